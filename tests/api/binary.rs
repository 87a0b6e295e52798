//! The `scimgate` binary as a user runs it: no configuration, SQLite in the working
//! directory, generated admin and encryption keys, graceful shutdown on SIGTERM; the
//! other commands, `config` and `rekey` among them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_with_no_configuration_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimgate"));
    cmd.current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, _) in std::env::vars() {
        if k.starts_with("SCIMGATE_") {
            cmd.env_remove(k);
        }
    }
    // Only the port: the default 5225 may be taken on a shared machine.
    cmd.env("SCIMGATE_LISTEN", "127.0.0.1:0");
    let mut child = cmd.spawn().expect("spawn scimgate");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a line").expect("stdout");
    let base = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");

    // SQLite file, and private admin and encryption key files in the working directory.
    assert!(dir.path().join("scimgate.db").exists());
    let key_path = dir.path().join("scimgate-admin-key");
    let key = std::fs::read_to_string(&key_path).expect("admin key file");
    let encryption_path = dir.path().join("scimgate-encryption-key");
    let encryption_key = std::fs::read_to_string(&encryption_path).expect("encryption key file");
    scimgate::secrets::Sealer::from_keys(encryption_key.trim()).expect("a usable key");
    #[cfg(unix)]
    for path in [&key_path, &encryption_path] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let client = crate::common::http_client();
    let resp = client
        .post(format!("{base}/api/v1/directory-sync"))
        .header("Authorization", format!("Api-Key {}", key.trim()))
        .json(&serde_json::json!({"tenant": "t", "product": "p"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["data"]["scim"]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with(&base));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A restart reuses the keys and the database.
    let out = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("SCIMGATE_DATABASE_URL")
        .env_remove("SCIMGATE_ENCRYPTION_KEY")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
    assert_eq!(
        std::fs::read_to_string(&encryption_path).unwrap(),
        encryption_key
    );
}

#[test]
fn directory_create_prints_the_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_scimgate"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("SCIMGATE_DATABASE_URL")
            .env("SCIMGATE_EXTERNAL_URL", "https://scim.example.com")
            .output()
            .unwrap()
    };
    let out = run(&[
        "directory",
        "create",
        "--tenant",
        "acme",
        "--product",
        "crm",
        "--type",
        "azure-scim-v2",
        "--user-limit",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["type"], "azure-scim-v2");
    assert_eq!(json["user_limit"], 5);
    assert!(json["scim"]["secret"].as_str().unwrap().len() >= 32);
    assert!(json["scim"]["endpoint"]
        .as_str()
        .unwrap()
        .starts_with("https://scim.example.com/api/scim/v2.0/"));
    let bad = run(&["directory", "create", "--tenant", "a:b", "--product", "crm"]);
    assert!(!bad.status.success());
    let bad = run(&["directory", "create", "--bogus", "x"]);
    assert!(!bad.status.success());
    let bad = run(&[
        "directory",
        "create",
        "--tenant",
        "a",
        "--product",
        "b",
        "--type",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(2), "clap refuses an unknown type");
    // --config is accepted before or after the command.
    std::fs::write(
        dir.path().join("c.toml"),
        "[server]\nlisten = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    for args in [
        &[
            "--config",
            "c.toml",
            "directory",
            "create",
            "--tenant",
            "c1",
            "--product",
            "p",
        ][..],
        &[
            "directory",
            "create",
            "--tenant",
            "c2",
            "--product",
            "p",
            "-c",
            "c.toml",
        ][..],
    ] {
        let out = run(args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn verify_webhook_checks_both_signature_schemes() {
    use scimgate::webhooks::signing;
    use std::io::Write;
    let body = br#"{"id":"evt_1","event":"user.created"}"#;
    let secret = signing::generate_secret().unwrap();
    let ts = chrono::Utc::now().timestamp();
    let run = |secret: &str, headers: &[String]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimgate"));
        cmd.args(["verify-webhook", "--secret", secret]);
        for h in headers {
            cmd.args(["--header", h]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body).unwrap();
        child.wait_with_output().unwrap()
    };
    let headers = vec![
        "webhook-id: evt_1".to_string(),
        format!("webhook-timestamp: {ts}"),
        format!(
            "webhook-signature: {}",
            signing::standard_signature(&secret, "evt_1", ts, body)
        ),
        format!(
            "BoxyHQ-Signature: {}",
            signing::boxyhq_signature(&secret, ts * 1000, body)
        ),
    ];
    let out = run(&secret, &headers);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Standard Webhooks signature: valid")
            && text.contains("BoxyHQ-Signature: valid")
    );
    let out = run("whsec_d3Jvbmc=", &headers);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&secret, &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn rejects_unknown_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("serve"));
    // Every setting, from the declarations.
    for s in scimgate::config::SETTINGS {
        assert!(help.contains(&s.env()), "{} missing from --help", s.env());
    }
    for args in [
        &["help"][..],
        &["help", "rekey"][..],
        &["rekey", "--help"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scimgate"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
    }
}

/// Runs the binary in `dir` with only the `SCIMGATE_*` variables given.
fn scimgate(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scimgate"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("SCIMGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn config_prints_the_settings_in_effect_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("scimgate.toml"),
        "listen = \"0.0.0.0:9999\"\n[webhooks]\nwebhook_secret = \"file-hook-secret\"\n",
    )
    .unwrap();
    let key = scimgate::secrets::generate_key().unwrap();
    let out = scimgate(
        dir.path(),
        &["config", "--config", "scimgate.toml"],
        &[
            ("SCIMGATE_API_KEYS", "admin-key-one,admin-key-two"),
            ("SCIMGATE_ENCRYPTION_KEY", &key),
            (
                "SCIMGATE_DATABASE_URL",
                "postgres://u:db-password@db/scimgate",
            ),
            ("SCIMGATE_WEBHOOK_TIMEOUT_MS", "1234"),
            ("SCIMGATE_LISTN", "typo"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in [
        "admin-key-one",
        "admin-key-two",
        &key,
        "db-password",
        "file-hook-secret",
    ] {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    let shown: toml::Table = text.parse().expect("the output is TOML");
    assert_eq!(shown["server"]["listen"].as_str(), Some("0.0.0.0:9999"));
    assert_eq!(
        shown["webhooks"]["webhook_timeout_ms"].as_integer(),
        Some(1234)
    );
    assert_eq!(
        shown["server"]["api_keys"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(
        text.contains("listen = \"0.0.0.0:9999\"  # from scimgate.toml"),
        "{text}"
    );
    assert!(
        text.contains("# from SCIMGATE_WEBHOOK_TIMEOUT_MS"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SCIMGATE_LISTN"));
    assert!(
        !dir.path().join("scimgate-encryption-key").exists(),
        "config creates nothing"
    );

    let bad = scimgate(
        dir.path(),
        &["config"],
        &[("SCIMGATE_MAX_BODY_BYTES", "lots")],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("SCIMGATE_MAX_BODY_BYTES"));
}

#[test]
fn rekey_rotates_the_encryption_key_and_recovers_from_a_lost_one() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new, third) = (
        scimgate::secrets::generate_key().unwrap(),
        scimgate::secrets::generate_key().unwrap(),
        scimgate::secrets::generate_key().unwrap(),
    );
    let ids = |keys: &str| {
        scimgate::secrets::Sealer::from_keys(keys)
            .unwrap()
            .current_key_id()
            .to_string()
    };
    let with = |key: &str, args: &[&str]| {
        scimgate(
            dir.path(),
            args,
            &[
                ("SCIMGATE_ENCRYPTION_KEY", key),
                ("SCIMGATE_WEBHOOK_ALLOW_PRIVATE", "true"),
            ],
        )
    };
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let failed = |out: &std::process::Output| {
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let created = ok(&with(
        &old,
        &[
            "directory",
            "create",
            "--tenant",
            "t",
            "--product",
            "p",
            "--webhook-url",
            "http://127.0.0.1:9/hook",
            "--webhook-secret",
            "cli-hook-secret",
        ],
    ));
    let json: serde_json::Value = serde_json::from_str(&created).unwrap();
    assert_eq!(json["webhook"]["secret"], "cli-hook-secret", "shown once");
    let db = std::fs::read(dir.path().join("scimgate.db")).unwrap();
    assert!(!db.windows(15).any(|w| w == b"cli-hook-secret"));

    // Another key alone: start-up and rekey refuse, naming the missing key.
    let err = failed(&with(&new, &["migrate"]));
    assert!(
        err.contains(&ids(&old)) && err.contains("--discard-unreadable"),
        "{err}"
    );
    let err = failed(&with(&new, &["rekey"]));
    assert!(err.contains(&ids(&old)), "{err}");

    // The new key first, the old one after: rekey moves the directory's secret and its
    // primary endpoint's to the new key; the old key can then go.
    let out = ok(&with(&format!("{new},{old}"), &["rekey"]));
    assert!(
        out.contains(&format!(
            "2 secret(s) re-sealed and 0 sealed for the first time under key {}",
            ids(&new)
        )),
        "{out}"
    );
    ok(&with(&new, &["migrate"]));

    // A lost key: only --discard-unreadable goes on, replacing what it sealed.
    failed(&with(&third, &["rekey"]));
    let out = ok(&with(&third, &["rekey", "--discard-unreadable"]));
    assert!(out.starts_with("2 secret(s)"), "{out}");
    ok(&with(&third, &["migrate"]));

    // Without a key, rekey never generates one.
    let err = failed(&scimgate(dir.path(), &["rekey"], &[]));
    assert!(err.contains("no encryption key"), "{err}");
    assert!(!dir.path().join("scimgate-encryption-key").exists());
}
