//! The `scimgate` binary: the command line over the library. `serve` is the default.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use scimgate::config::{Config, LogFormat};
use scimgate::directory::directories::PROVIDER_TYPES;
use scimgate::directory::webhooks as endpoints;
use scimgate::secrets::SealReport;
use scimgate::secrets::Sealer;
use scimgate::Error;

#[derive(Parser)]
#[command(
    name = "scimgate",
    version,
    about = "SCIM 2.0 directory-sync gateway: SCIM server, admin API, signed webhook fan-out",
    after_help = "Settings come from SCIMGATE_* variables and the TOML file: `--help` lists them, \
                  `scimgate config` shows those in effect."
)]
struct Cli {
    /// TOML configuration file; SCIMGATE_* variables override what it sets.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "SCIMGATE_CONFIG"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply the database migrations, seal secrets still stored in plaintext, and exit.
    Migrate,
    /// Manage directories from scripts and at first set-up, without curl.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Manage the integrators' OAuth clients of Enterprise Connect.
    #[command(subcommand)]
    Application(ApplicationCommand),
    /// Check a webhook delivery's signatures; the body on standard input. Exits 0 when
    /// every signature given is valid, 1 when one is not.
    VerifyWebhook(VerifyWebhook),
    /// Print the configuration in effect (defaults, file, environment) as TOML, with
    /// secrets masked.
    Config,
    /// Re-seal every stored secret under the first key of SCIMGATE_ENCRYPTION_KEY (after
    /// putting a new key first); the older keys can then be removed.
    Rekey {
        /// Replace the secrets that no configured key opens (the key that sealed them is
        /// lost) with new generated ones, and disable their endpoints until an admin sets
        /// a secret the receiver knows.
        #[arg(long)]
        discard_unreadable: bool,
    },
    /// Run fake Google and Microsoft APIs with demo data, for development: writes the
    /// fake service account's key and prints the SCIMGATE_* settings that use them.
    DevProviders {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5300")]
        listen: String,
        #[arg(
            long,
            value_name = "FILE",
            default_value = "./dev-google-service-account.json"
        )]
        key_file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Create a directory and print it with its SCIM secret (JSON).
    Create(CreateDirectory),
}

#[derive(Subcommand)]
enum ApplicationCommand {
    /// Register an application and print it with its client secret (JSON; the secret is
    /// shown this once).
    Create(CreateApplication),
}

#[derive(Args)]
struct CreateApplication {
    #[arg(long, value_name = "N")]
    name: String,
    /// A redirect URI the application may use (exact match); repeat for several.
    #[arg(long = "redirect-uri", value_name = "U", required = true)]
    redirect_uris: Vec<String>,
}

#[derive(Args)]
struct CreateDirectory {
    #[arg(long, value_name = "T")]
    tenant: String,
    #[arg(long, value_name = "P")]
    product: String,
    /// Default: scim-TENANT-PRODUCT.
    #[arg(long, value_name = "N")]
    name: Option<String>,
    /// The identity provider (default generic-scim-v2).
    #[arg(
        long = "type",
        value_name = "TYPE",
        value_parser = clap::builder::PossibleValuesParser::new(PROVIDER_TYPES.iter().copied())
    )]
    provider_type: Option<String>,
    /// Where the directory's events are sent.
    #[arg(long, value_name = "URL")]
    webhook_url: Option<String>,
    /// The webhook's signing secret (default: generated and printed).
    #[arg(long, value_name = "S")]
    webhook_secret: Option<String>,
    /// Most users the directory may hold.
    #[arg(long, value_name = "N")]
    user_limit: Option<i64>,
}

#[derive(Args)]
struct VerifyWebhook {
    /// The endpoint's signing secret.
    #[arg(long, value_name = "S")]
    secret: String,
    /// A delivery header, `name: value`; give webhook-id, webhook-timestamp and
    /// webhook-signature, and/or BoxyHQ-Signature.
    #[arg(long = "header", value_name = "'NAME: VALUE'", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

fn parse_header(v: &str) -> Result<(String, String), String> {
    match v.split_once(':') {
        Some((name, value)) => Ok((name.trim().to_ascii_lowercase(), value.trim().to_string())),
        None => Err(format!("expected 'name: value', got {v:?}")),
    }
}

fn main() -> ExitCode {
    // `--help` lists every setting, from their declarations.
    let matches = Cli::command()
        .after_long_help(scimgate::config::help_text())
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let file = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::VerifyWebhook(args) => verify_webhook(&args),
        Command::Config => show_config(file),
        Command::Serve => with_config(file, serve),
        Command::Migrate => with_config(file, migrate),
        Command::Directory(DirectoryCommand::Create(args)) => {
            with_config(file, |c| create_directory(c, args))
        }
        Command::Application(ApplicationCommand::Create(args)) => {
            with_config(file, |c| create_application(c, args))
        }
        Command::Rekey { discard_unreadable } => {
            with_config(file, |c| rekey(c, discard_unreadable))
        }
        Command::DevProviders { listen, key_file } => dev_providers(&listen, &key_file),
    }
}

/// `scimgate dev-providers`: the fakes until Ctrl-C (no configuration needed).
fn dev_providers(listen: &str, key_file: &std::path::Path) -> ExitCode {
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start runtime: {e}")))
        .and_then(|rt| rt.block_on(scimgate::devproviders::run_cli(listen, key_file)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the configuration (exit status 2 when it is wrong), starts logging and runs `f`.
fn with_config(file: Option<PathBuf>, f: impl FnOnce(Config) -> Result<(), Error>) -> ExitCode {
    let config = match Config::load(file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scimgate: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    for name in Config::unknown_env() {
        tracing::warn!(variable = %name, "set but no setting: ignored");
    }
    match f(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scimgate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `scimgate config`: the configuration in effect, secrets masked.
fn show_config(file: Option<PathBuf>) -> ExitCode {
    match Config::load_traced(file.as_deref()) {
        Ok((config, sources)) => {
            print!("{}", config.render(&sources));
            for name in Config::unknown_env() {
                eprintln!("scimgate: warning: {name} is set but is no setting");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scimgate: {e}");
            ExitCode::from(2)
        }
    }
}

/// A usage error found after parsing: as clap reports its own (exit status 2).
fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}\n\nFor more information, try '--help'.");
    ExitCode::from(2)
}

/// `scimgate verify-webhook`: exit 0 when every signature present verifies (and at least
/// one is present), 1 otherwise.
fn verify_webhook(args: &VerifyWebhook) -> ExitCode {
    use scimgate::webhooks::signing;
    use std::io::Read;
    let secret = &args.secret;
    let header = |n: &str| {
        args.headers
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
        let valid = signing::verify_standard(secret, id, ts, &body, sig);
        let age = chrono::Utc::now().timestamp() - ts;
        println!(
            "Standard Webhooks signature: {} (timestamp {age} s old)",
            if valid { "valid" } else { "INVALID" }
        );
        checked += 1;
        ok &= valid;
    }
    if let Some(sig) = header("boxyhq-signature") {
        let valid = signing::verify_boxyhq(secret, &body, sig);
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

/// The encryption key, generated into its file on first use (as `serve` does).
fn sealer(config: &mut Config) -> Result<Sealer, Error> {
    if let Some(path) = config.resolve_encryption_key(true)? {
        tracing::info!(
            path = %path.display(),
            "encryption key (SCIMGATE_ENCRYPTION_KEY unset) is in this file: back it up, the webhook secrets cannot be opened without it"
        );
    }
    config.sealer()
}

/// Opens (and migrates) the database, then seals what an older version stored in
/// plaintext. Refuses to go on when a stored secret cannot be opened: a second instance
/// that generated its own key would otherwise seal new secrets no other instance opens.
fn open_db(config: &Config, sealer: &Sealer) -> Result<scimgate::store::Db, Error> {
    let db = config.open_db()?;
    let report = seal_all(&mut *db.conn()?, sealer, false)?;
    if !report.unreadable.is_empty() {
        return Err(unreadable(sealer, &report));
    }
    if report.sealed > 0 {
        tracing::info!(count = report.sealed, "sealed secrets stored in plaintext");
    }
    Ok(db)
}

/// The sealing pass over every sealed column: webhook secrets, then Enterprise Connect's.
fn seal_all(
    conn: &mut scimgate::store::AnyConnection,
    sealer: &Sealer,
    rekey: bool,
) -> Result<SealReport, Error> {
    let mut report = endpoints::seal_stored_secrets(conn, sealer, rekey)?;
    scimgate::connect::sealing::seal_stored_secrets(conn, sealer, rekey, &mut report)?;
    Ok(report)
}

fn unreadable(sealer: &Sealer, report: &SealReport) -> Error {
    const SHOWN: usize = 10;
    let mut list: Vec<String> = report.unreadable.iter().take(SHOWN).cloned().collect();
    if report.unreadable.len() > SHOWN {
        list.push(format!("… and {} more", report.unreadable.len() - SHOWN));
    }
    Error::Config(format!(
        "{} stored secret(s) cannot be opened with the configured encryption key(s) ({}):\n  {}\n\
         Put the key that sealed them back into SCIMGATE_ENCRYPTION_KEY (after the current \
         one). If it is lost, `scimgate rekey --discard-unreadable` replaces those secrets \
         and disables their endpoints until an admin sets new ones.",
        report.unreadable.len(),
        sealer.key_ids().join(", "),
        list.join("\n  ")
    ))
}

fn migrate(mut config: Config) -> Result<(), Error> {
    let sealer = sealer(&mut config)?;
    open_db(&config, &sealer)?;
    println!("migrations applied");
    Ok(())
}

/// `scimgate rekey`: never generates a key (a new one opens nothing stored).
fn rekey(mut config: Config, discard_unreadable: bool) -> Result<(), Error> {
    config.resolve_encryption_key(false)?;
    let sealer = config.sealer()?;
    let db = config.open_db()?;
    let mut conn = db.conn()?;
    if discard_unreadable {
        let n = endpoints::replace_unreadable_secrets(&mut conn, &sealer)?
            + scimgate::connect::sealing::discard_unreadable(&mut conn, &sealer)?;
        println!(
            "{n} secret(s) no configured key opens were replaced; their endpoints are disabled until an admin sets a new secret"
        );
    }
    let report = seal_all(&mut conn, &sealer, true)?;
    if !report.unreadable.is_empty() {
        return Err(unreadable(&sealer, &report));
    }
    println!(
        "{} secret(s) re-sealed and {} sealed for the first time under key {}",
        report.resealed,
        report.sealed,
        sealer.current_key_id()
    );
    if report.skipped > 0 {
        println!(
            "{} secret(s) changed while this ran: run `scimgate rekey` again",
            report.skipped
        );
    }
    Ok(())
}

/// `scimgate directory create`: for scripts and first-time set-up without curl.
fn create_directory(mut config: Config, args: CreateDirectory) -> Result<(), Error> {
    // Through the admin API's own input type, so both check a directory the same way.
    let mut input = serde_json::json!({"tenant": args.tenant, "product": args.product});
    for (key, value) in [
        ("name", args.name),
        ("type", args.provider_type),
        ("webhook_url", args.webhook_url),
        ("webhook_secret", args.webhook_secret),
    ] {
        if let Some(v) = value {
            input[key] = v.into();
        }
    }
    if let Some(n) = args.user_limit {
        input["user_limit"] = n.into();
    }
    let input = serde_json::from_value(input)
        .map_err(|e| Error::Config(format!("invalid directory: {e}")))?;
    let sealer = sealer(&mut config)?;
    let db = open_db(&config, &sealer)?;
    let (row, secret, webhook_secret) = scimgate::directory::directories::create(
        &mut *db.conn()?,
        &sealer,
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
        webhook_secret.as_deref(),
    );
    println!("{json:#}");
    Ok(())
}

/// `scimgate application create`: as `POST /api/v1/applications`.
fn create_application(mut config: Config, args: CreateApplication) -> Result<(), Error> {
    let sealer = sealer(&mut config)?;
    let db = open_db(&config, &sealer)?;
    let new = scimgate::connect::applications::NewApplication {
        name: args.name,
        redirect_uris: args.redirect_uris,
    };
    let (row, secret) = scimgate::connect::applications::create(&mut *db.conn()?, &sealer, new)?;
    println!(
        "{:#}",
        scimgate::connect::applications::to_json(&row, Some(&secret))
    );
    Ok(())
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|e| {
        eprintln!(
            "scimgate: SCIMGATE_LOG {:?}: {e}; logging at info",
            config.log
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(mut config: Config) -> Result<(), Error> {
    if let Some(path) = config.resolve_api_keys()? {
        tracing::info!(path = %path.display(), "admin API key (SCIMGATE_API_KEYS unset) is in this file");
    }
    let sealer = sealer(&mut config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start runtime: {e}")))?;
    runtime.block_on(async move {
        let db = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || open_db(&config, &sealer))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??
        };
        tracing::info!(backend = ?db.backend(), "database ready");
        let running = scimgate::http::bind(&config, db)?;
        println!("listening on http://{}", running.addr);
        tracing::info!(external_url = %running.external_url, "serving");
        running
            .server
            .await
            .map_err(|e| Error::Internal(format!("server error: {e}")))?;
        // Let attempts in flight finish (each is bounded by the webhook timeout).
        tracing::info!("server stopped; finishing webhook deliveries in flight");
        running.dispatcher.shutdown().await;
        running.authorizations.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}
