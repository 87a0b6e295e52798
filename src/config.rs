//! Configuration: defaults, then an optional TOML file, then `SCIMGATE_*` environment
//! variables (names as in DESIGN.md §7).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: String,
    /// Base of URLs we hand out; `None` means `http://` + the bound address.
    pub external_url: Option<String>,
    pub api_keys: Vec<String>,
    pub encryption_key: Option<String>,
    pub webhook_allow_private: bool,
    pub log_format: LogFormat,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Grace period of a rotated SCIM secret, in seconds.
    pub secret_grace_seconds: i64,
    /// Where a generated admin key is kept when `api_keys` is empty.
    pub admin_key_file: PathBuf,
    /// How long a directory row is reused for SCIM authentication, in milliseconds
    /// (0 reads it on every request). Bounds how late other instances see an admin change.
    pub directory_cache_ms: u64,
    /// Delay before each webhook attempt (DESIGN.md §5); its length is the number of
    /// attempts before a delivery goes to the dead letters.
    pub webhook_retry_schedule: Vec<std::time::Duration>,
    /// Time allowed for one webhook attempt, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// How long an instance's claim on an endpoint lasts without renewal, in
    /// milliseconds; another instance takes over after that (must exceed the timeout).
    pub webhook_lease_ms: u64,
    /// Endpoints one instance delivers to at once.
    pub webhook_concurrency: usize,
    /// How long attempt logs and finished deliveries are kept, in hours.
    pub webhook_log_retention_hours: i64,
    /// Time a client has to send a request's headers, in milliseconds (408 and close
    /// beyond; 0 disables).
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's whole body once its headers arrived, in
    /// milliseconds (408 beyond; 0 disables): a slow sender cannot hold a worker.
    pub request_timeout_ms: u64,
    /// Longest a PostgreSQL statement of a request may run, in milliseconds (503 beyond;
    /// 0 disables). Deleting a directory and pruning logs are exempt.
    pub statement_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://scimgate.db".into(),
            listen: "127.0.0.1:5225".into(),
            external_url: None,
            api_keys: Vec::new(),
            encryption_key: None,
            webhook_allow_private: false,
            log_format: LogFormat::Text,
            webhook_url: None,
            webhook_secret: None,
            max_body_bytes: 1024 * 1024,
            secret_grace_seconds: 24 * 3600,
            admin_key_file: PathBuf::from("scimgate-admin-key"),
            directory_cache_ms: 1000,
            webhook_retry_schedule: crate::webhooks::delivery::Settings::default_schedule(),
            webhook_timeout_ms: 15_000,
            webhook_lease_ms: 60_000,
            webhook_concurrency: 64,
            webhook_log_retention_hours: 7 * 24,
            header_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            statement_timeout_ms: crate::store::DEFAULT_STATEMENT_TIMEOUT.as_millis() as u64,
        }
    }
}

/// The TOML file's shape: the environment names without the prefix, lower-cased.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    listen: Option<String>,
    external_url: Option<String>,
    api_keys: Option<Vec<String>>,
    encryption_key: Option<String>,
    webhook_allow_private: Option<bool>,
    log_format: Option<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    max_body_bytes: Option<usize>,
    secret_grace_seconds: Option<i64>,
    admin_key_file: Option<PathBuf>,
    directory_cache_ms: Option<u64>,
    webhook_retry_schedule: Option<String>,
    webhook_timeout_ms: Option<u64>,
    webhook_lease_ms: Option<u64>,
    webhook_concurrency: Option<usize>,
    webhook_log_retention_hours: Option<i64>,
    header_timeout_ms: Option<u64>,
    request_timeout_ms: Option<u64>,
    statement_timeout_ms: Option<u64>,
}

impl Config {
    /// Defaults ← `file` (if given) ← environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        let mut c = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            let f: FileConfig = toml::from_str(&text)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            c.apply_file(f)?;
        }
        c.apply_env(|k| std::env::var(k).ok())?;
        Ok(c)
    }

    fn apply_file(&mut self, f: FileConfig) -> Result<(), Error> {
        macro_rules! take {
            ($($field:ident),*) => { $( if let Some(v) = f.$field { self.$field = v; } )* };
        }
        take!(
            database_url,
            listen,
            api_keys,
            webhook_allow_private,
            max_body_bytes,
            secret_grace_seconds,
            admin_key_file,
            directory_cache_ms,
            webhook_timeout_ms,
            webhook_lease_ms,
            webhook_concurrency,
            webhook_log_retention_hours,
            header_timeout_ms,
            request_timeout_ms,
            statement_timeout_ms
        );
        if let Some(v) = f.webhook_retry_schedule {
            self.webhook_retry_schedule = parse_schedule(&v)?;
        }
        self.external_url = f.external_url.or(self.external_url.take());
        self.encryption_key = f.encryption_key.or(self.encryption_key.take());
        self.webhook_url = f.webhook_url.or(self.webhook_url.take());
        self.webhook_secret = f.webhook_secret.or(self.webhook_secret.take());
        if let Some(v) = f.log_format {
            self.log_format = parse_log_format(&v)?;
        }
        Ok(())
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("SCIMGATE_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("SCIMGATE_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("SCIMGATE_EXTERNAL_URL") {
            self.external_url = Some(v);
        }
        if let Some(v) = get("SCIMGATE_API_KEYS") {
            self.api_keys = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = get("SCIMGATE_ENCRYPTION_KEY") {
            self.encryption_key = Some(v);
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_ALLOW_PRIVATE") {
            self.webhook_allow_private = parse_bool("SCIMGATE_WEBHOOK_ALLOW_PRIVATE", &v)?;
        }
        if let Some(v) = get("SCIMGATE_LOG_FORMAT") {
            self.log_format = parse_log_format(&v)?;
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_URL") {
            self.webhook_url = Some(v);
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_SECRET") {
            self.webhook_secret = Some(v);
        }
        if let Some(v) = get("SCIMGATE_MAX_BODY_BYTES") {
            self.max_body_bytes = number("SCIMGATE_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("SCIMGATE_DIRECTORY_CACHE_MS") {
            self.directory_cache_ms = number("SCIMGATE_DIRECTORY_CACHE_MS", &v)?;
        }
        if let Some(v) = get("SCIMGATE_ADMIN_KEY_FILE") {
            self.admin_key_file = PathBuf::from(v);
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_RETRY_SCHEDULE") {
            self.webhook_retry_schedule = parse_schedule(&v)?;
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_TIMEOUT_MS") {
            self.webhook_timeout_ms = number("SCIMGATE_WEBHOOK_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_LEASE_MS") {
            self.webhook_lease_ms = number("SCIMGATE_WEBHOOK_LEASE_MS", &v)?;
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_CONCURRENCY") {
            self.webhook_concurrency = number("SCIMGATE_WEBHOOK_CONCURRENCY", &v)?;
        }
        if let Some(v) = get("SCIMGATE_WEBHOOK_LOG_RETENTION_HOURS") {
            self.webhook_log_retention_hours = number("SCIMGATE_WEBHOOK_LOG_RETENTION_HOURS", &v)?;
        }
        if let Some(v) = get("SCIMGATE_HEADER_TIMEOUT_MS") {
            self.header_timeout_ms = number("SCIMGATE_HEADER_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("SCIMGATE_REQUEST_TIMEOUT_MS") {
            self.request_timeout_ms = number("SCIMGATE_REQUEST_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("SCIMGATE_STATEMENT_TIMEOUT_MS") {
            self.statement_timeout_ms = number("SCIMGATE_STATEMENT_TIMEOUT_MS", &v)?;
        }
        Ok(())
    }

    /// Opens the configured database with the configured statement timeout.
    pub fn open_db(&self) -> Result<crate::store::Db, Error> {
        crate::store::Db::open_with(
            &self.database_url,
            Some(std::time::Duration::from_millis(self.statement_timeout_ms)),
        )
    }

    /// The delivery workers' settings, checked.
    pub fn delivery_settings(&self) -> Result<crate::webhooks::delivery::Settings, Error> {
        use std::time::Duration;
        if self.webhook_retry_schedule.is_empty() {
            return Err(Error::Config(
                "SCIMGATE_WEBHOOK_RETRY_SCHEDULE needs at least one delay".into(),
            ));
        }
        // A round renews its lease at least every (lease - timeout) / 2, so an attempt
        // that starts just before a renewal is due still ends inside the lease.
        if self.webhook_lease_ms < 2 * self.webhook_timeout_ms {
            return Err(Error::Config(format!(
                "SCIMGATE_WEBHOOK_LEASE_MS ({}) must be at least twice SCIMGATE_WEBHOOK_TIMEOUT_MS ({})",
                self.webhook_lease_ms, self.webhook_timeout_ms
            )));
        }
        if self.webhook_url.is_some() && self.webhook_secret.as_deref().unwrap_or("").is_empty() {
            return Err(Error::Config(
                "SCIMGATE_WEBHOOK_SECRET is required with SCIMGATE_WEBHOOK_URL (deliveries are signed with it)"
                    .into(),
            ));
        }
        Ok(crate::webhooks::delivery::Settings {
            schedule: self.webhook_retry_schedule.clone(),
            timeout: Duration::from_millis(self.webhook_timeout_ms),
            lease: Duration::from_millis(self.webhook_lease_ms),
            concurrency: self.webhook_concurrency.max(1),
            allow_private: self.webhook_allow_private,
            poll: Duration::from_millis(200),
        })
    }

    /// The admin API keys; with none configured, the key in `admin_key_file`, created
    /// (mode 0600) on first start. Returns the keys and, when generated, the file's path.
    pub fn resolve_api_keys(&mut self) -> Result<Option<PathBuf>, Error> {
        if !self.api_keys.is_empty() {
            return Ok(None);
        }
        let path = self.admin_key_file.clone();
        let key = match std::fs::read_to_string(&path) {
            Ok(existing) if !existing.trim().is_empty() => existing.trim().to_string(),
            _ => {
                let key = format!("sgk_{}", crate::secrets::random_token(32)?);
                write_private(&path, &key)?;
                key
            }
        };
        self.api_keys = vec![key];
        Ok(Some(path))
    }
}

fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))?;
    writeln!(f, "{contents}")
        .map_err(|e| Error::Config(format!("cannot write {}: {e}", path.display())))
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, Error> {
    v.parse()
        .map_err(|_| Error::Config(format!("{name}: not a number: {v}")))
}

fn parse_bool(name: &str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name}: expected true or false, got {v:?}"
        ))),
    }
}

/// `0,5s,5m,30m,2h,5h,10h,10h`: delays with a unit (`ms`, `s`, `m`, `h`; none: seconds).
fn parse_schedule(v: &str) -> Result<Vec<std::time::Duration>, Error> {
    use std::time::Duration;
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (n, unit) = s.split_at(split);
            let n: u64 = n.parse().map_err(|_| {
                Error::Config(format!("SCIMGATE_WEBHOOK_RETRY_SCHEDULE: bad delay {s:?}"))
            })?;
            match unit {
                "ms" => Ok(Duration::from_millis(n)),
                "" | "s" => Ok(Duration::from_secs(n)),
                "m" => Ok(Duration::from_secs(n * 60)),
                "h" => Ok(Duration::from_secs(n * 3600)),
                _ => Err(Error::Config(format!(
                    "SCIMGATE_WEBHOOK_RETRY_SCHEDULE: unknown unit in {s:?} (ms, s, m, h)"
                ))),
            }
        })
        .collect()
}

fn parse_log_format(v: &str) -> Result<LogFormat, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(Error::Config(format!(
            "log format must be text or json, got {v:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_defaults() {
        let mut c = Config::default();
        c.apply_env(|k| match k {
            "SCIMGATE_API_KEYS" => Some("a, b,,".into()),
            "SCIMGATE_WEBHOOK_ALLOW_PRIVATE" => Some("true".into()),
            "SCIMGATE_LOG_FORMAT" => Some("json".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.api_keys, vec!["a", "b"]);
        assert!(c.webhook_allow_private);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.listen, "127.0.0.1:5225");
        assert!(c
            .apply_env(|k| (k == "SCIMGATE_LOG_FORMAT").then(|| "xml".into()))
            .is_err());
    }

    #[test]
    fn retry_schedule_parses_units() {
        use std::time::Duration;
        assert_eq!(
            parse_schedule("0, 50ms,5s,2m,1h").unwrap(),
            vec![
                Duration::ZERO,
                Duration::from_millis(50),
                Duration::from_secs(5),
                Duration::from_secs(120),
                Duration::from_secs(3600)
            ]
        );
        assert!(parse_schedule("5d").is_err());
        assert!(parse_schedule("x").is_err());
        let mut c = Config::default();
        let s = c.delivery_settings().unwrap();
        assert_eq!(s.schedule.len(), 8);
        assert_eq!(s.schedule[4], Duration::from_secs(7200));
        c.webhook_lease_ms = c.webhook_timeout_ms + 1;
        assert!(
            c.delivery_settings().is_err(),
            "lease must cover two attempts"
        );
        c.webhook_lease_ms = 60_000;
        c.webhook_url = Some("https://hooks.example.com".into());
        assert!(
            c.delivery_settings().is_err(),
            "the global endpoint must be signed"
        );
        c.webhook_secret = Some("s".into());
        assert!(c.delivery_settings().is_ok());
    }

    #[test]
    fn toml_file_is_read() {
        let mut c = Config::default();
        let f: FileConfig =
            toml::from_str("listen = \"0.0.0.0:1\"\napi_keys = [\"k\"]\nlog_format = \"json\"")
                .unwrap();
        c.apply_file(f).unwrap();
        assert_eq!(c.listen, "0.0.0.0:1");
        assert_eq!(c.api_keys, vec!["k"]);
        assert!(toml::from_str::<FileConfig>("nope = 1").is_err());
    }
}
