//! The `scimgate` binary: `serve` (default) and `migrate`.

use std::path::PathBuf;
use std::process::ExitCode;

use scimgate::config::{Config, LogFormat};
use scimgate::store::Db;

const USAGE: &str = "usage: scimgate [serve | migrate] [--config FILE]

  serve     run the gateway (default)
  migrate   apply database migrations and exit

Configuration comes from SCIMGATE_* environment variables (see README.md),
optionally on top of a TOML file given with --config or SCIMGATE_CONFIG.";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut command = None;
    let mut config_file = std::env::var_os("SCIMGATE_CONFIG").map(PathBuf::from);
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
        "migrate" => Db::open(&config.database_url).map(|_| println!("migrations applied")),
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
            let url = config.database_url.clone();
            tokio::task::spawn_blocking(move || Db::open(&url))
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
        tracing::info!("stopped");
        Ok(())
    })
}
