//! The `scimgate` binary: `serve` (default) and `migrate`.

use std::path::PathBuf;
use std::process::ExitCode;

use scimgate::config::{Config, LogFormat};

const USAGE: &str = "usage: scimgate [serve | migrate | directory create OPTIONS | verify-webhook OPTIONS] [--config FILE]

  serve             run the gateway (default)
  migrate           apply database migrations and exit
  directory create  create a directory and print it with its SCIM secret (JSON):
                    --tenant T --product P [--name N] [--type okta-scim-v2|azure-scim-v2|...]
                    [--webhook-url URL] [--webhook-secret S] [--user-limit N]
  verify-webhook    check a delivery's signatures; the body on standard input:
                    --secret S --header 'webhook-id: …' --header 'webhook-timestamp: …'
                    --header 'webhook-signature: v1,…' [--header 'BoxyHQ-Signature: t=…,s=…']

Configuration comes from SCIMGATE_* environment variables (see README.md),
optionally on top of a TOML file given with --config or SCIMGATE_CONFIG.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut command = None;
    let mut config_file = std::env::var_os("SCIMGATE_CONFIG").map(PathBuf::from);
    let mut options: Vec<(String, String)> = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(f) => config_file = Some(PathBuf::from(f)),
                None => return usage_error("--config needs a file"),
            },
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "serve" | "migrate" if command.is_none() => command = Some(arg),
            "verify-webhook" if command.is_none() => command = Some(arg),
            "directory" if command.is_none() => match args.next().as_deref() {
                Some("create") => command = Some("directory create".into()),
                _ => return usage_error("expected: directory create"),
            },
            flag if flag.starts_with("--")
                && matches!(
                    command.as_deref(),
                    Some("directory create" | "verify-webhook")
                ) =>
            {
                match args.next() {
                    Some(v) => options.push((flag.trim_start_matches("--").to_string(), v)),
                    None => return usage_error(&format!("{flag} needs a value")),
                }
            }
            other => return usage_error(&format!("unknown argument {other:?}")),
        }
    }
    let config = match Config::load(config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scimgate: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format);
    let result = match command.as_deref().unwrap_or("serve") {
        "migrate" => config.open_db().map(|_| println!("migrations applied")),
        "directory create" => create_directory(&config, &options),
        "verify-webhook" => return verify_webhook(&options),
        _ => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimgate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("scimgate: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

/// `scimgate verify-webhook`: exit 0 when every signature present verifies (and at least
/// one is present), 1 otherwise.
fn verify_webhook(options: &[(String, String)]) -> ExitCode {
    use scimgate::webhooks::signing;
    use std::io::Read;
    let mut secret = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    for (k, v) in options {
        match k.as_str() {
            "secret" => secret = Some(v.clone()),
            "header" => match v.split_once(':') {
                Some((name, value)) => {
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()))
                }
                None => return usage_error(&format!("--header wants 'name: value', got {v:?}")),
            },
            other => return usage_error(&format!("unknown option --{other}")),
        }
    }
    let Some(secret) = secret else {
        return usage_error("--secret is required");
    };
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut body) {
        eprintln!("scimgate: cannot read the body: {e}");
        return ExitCode::from(2);
    }
    let mut checked = 0;
    let mut ok = true;
    if let Some(sig) = header("webhook-signature") {
        let (Some(id), Some(ts)) = (
            header("webhook-id"),
            header("webhook-timestamp").and_then(|t| t.parse::<i64>().ok()),
        ) else {
            return usage_error(
                "webhook-signature needs webhook-id and a numeric webhook-timestamp",
            );
        };
        let valid = signing::verify_standard(&secret, id, ts, &body, sig);
        let age = chrono::Utc::now().timestamp() - ts;
        println!(
            "Standard Webhooks signature: {} (timestamp {age} s old)",
            if valid { "valid" } else { "INVALID" }
        );
        checked += 1;
        ok &= valid;
    }
    if let Some(sig) = header("boxyhq-signature") {
        let valid = signing::verify_boxyhq(&secret, &body, sig);
        println!(
            "BoxyHQ-Signature: {}",
            if valid { "valid" } else { "INVALID" }
        );
        checked += 1;
        ok &= valid;
    }
    if checked == 0 {
        return usage_error("no signature header given");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `scimgate directory create`: for scripts and first-time set-up without curl.
fn create_directory(config: &Config, options: &[(String, String)]) -> Result<(), scimgate::Error> {
    let mut input = serde_json::Map::new();
    for (k, v) in options {
        let key = match k.as_str() {
            "tenant" | "product" | "name" | "type" => k.clone(),
            "webhook-url" => "webhook_url".into(),
            "webhook-secret" => "webhook_secret".into(),
            "user-limit" => {
                let n: i64 = v.parse().map_err(|_| {
                    scimgate::Error::Config(format!("--user-limit: not a number: {v}"))
                })?;
                input.insert("user_limit".into(), n.into());
                continue;
            }
            other => return Err(scimgate::Error::Config(format!("unknown option --{other}"))),
        };
        input.insert(key, v.clone().into());
    }
    let input = serde_json::from_value(input.into())
        .map_err(|e| scimgate::Error::Config(format!("invalid directory: {e}")))?;
    let db = config.open_db()?;
    let (row, secret) = scimgate::directory::directories::create(
        &mut *db.conn()?,
        input,
        config.webhook_allow_private,
    )?;
    let external = config
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.listen));
    let json = scimgate::directory::admin_json::directory_json(
        &row,
        &external,
        Some(&secret),
        row.webhook_secret.as_deref(),
    );
    println!("{json:#}");
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCIMGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(mut config: Config) -> Result<(), scimgate::Error> {
    if let Some(path) = config.resolve_api_keys()? {
        tracing::info!(path = %path.display(), "admin API key (SCIMGATE_API_KEYS unset) is in this file");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| scimgate::Error::Internal(format!("cannot start runtime: {e}")))?;
    runtime.block_on(async move {
        let db = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || config.open_db())
                .await
                .map_err(|e| scimgate::Error::Internal(e.to_string()))??
        };
        tracing::info!(backend = ?db.backend(), "database ready");
        let running = scimgate::http::bind(&config, db)?;
        println!("listening on http://{}", running.addr);
        tracing::info!(external_url = %running.external_url, "serving");
        running
            .server
            .await
            .map_err(|e| scimgate::Error::Internal(format!("server error: {e}")))?;
        // Let attempts in flight finish (each is bounded by the webhook timeout).
        tracing::info!("server stopped; finishing webhook deliveries in flight");
        running.dispatcher.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}
