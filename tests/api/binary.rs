//! The `scimgate` binary as a user runs it: no configuration, SQLite in the working
//! directory, a generated admin key, graceful shutdown on SIGTERM.

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

    // SQLite file and a private admin key file in the working directory.
    assert!(dir.path().join("scimgate.db").exists());
    let key_path = dir.path().join("scimgate-admin-key");
    let key = std::fs::read_to_string(&key_path).expect("admin key file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
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
    // A restart reuses the key and the database.
    let out = Command::new(env!("CARGO_BIN_EXE_scimgate"))
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("SCIMGATE_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), key);
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
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
}
