//! Configuration. Every setting is declared once, in the `settings!` block below: its
//! name, section, type (which chooses its parser), default, help text (the doc comment)
//! and whether it is secret. From that one declaration come the [`Config`] struct and its
//! defaults, reading the TOML file and the environment, `scimgate --help`,
//! `scimgate config`, and the check of the README's table (tests/api/config_doc.rs).
//!
//! Precedence: defaults, then the TOML file, then `SCIMGATE_*` environment variables; an
//! empty value counts as unset. A setting's environment variable is `SCIMGATE_` and its
//! name in capitals; its TOML key is the name itself, either at the top level
//! (`database_url = "…"`, as before sections existed) or under its section
//! (`[storage]` then `database_url = "…"`). Sections only group: a key has one name
//! everywhere, so it can be grepped for and documented once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::secrets::Sealer;

/// Where the settings are grouped, in the TOML file, `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Server,
    Storage,
    Webhooks,
    /// Calendar and conferencing providers (Enterprise Connect).
    Providers,
    /// The admin dashboard (none yet).
    Dashboard,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Section::Server,
        Section::Storage,
        Section::Webhooks,
        Section::Providers,
        Section::Dashboard,
    ];

    /// The TOML table name.
    pub fn name(self) -> &'static str {
        match self {
            Section::Server => "server",
            Section::Storage => "storage",
            Section::Webhooks => "webhooks",
            Section::Providers => "providers",
            Section::Dashboard => "dashboard",
        }
    }

    fn named(name: &str) -> Option<Section> {
        Section::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The settings of this section, in declaration order.
    pub fn settings(self) -> impl Iterator<Item = &'static Setting> {
        SETTINGS.iter().filter(move |s| s.section == self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// How a setting's value is shown by `scimgate config` and `Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mask {
    Clear,
    /// Never shown.
    Secret,
    /// A URL: its password and query string (which may hold a token) are hidden.
    Url,
}

/// What a declaration may add to name, type, default and help.
struct Meta {
    /// The default as documented, when it is decided at run time ("generated").
    default: Option<&'static str>,
    mask: Mask,
}

impl Meta {
    const NONE: Meta = Meta {
        default: None,
        mask: Mask::Clear,
    };
}

/// One declared setting.
pub struct Setting {
    /// The TOML key; the environment variable is [`Setting::env`].
    pub name: &'static str,
    pub section: Section,
    help: &'static str,
    list: bool,
    meta: Meta,
    set: fn(&mut Config, &str) -> Result<(), String>,
    get: fn(&Config) -> Option<toml::Value>,
}

impl Setting {
    /// `SCIMGATE_` and the name in capitals.
    pub fn env(&self) -> String {
        format!("SCIMGATE_{}", self.name.to_ascii_uppercase())
    }

    /// The help text (the declaration's doc comment).
    pub fn help(&self) -> &'static str {
        self.help.trim()
    }

    pub fn is_secret(&self) -> bool {
        self.meta.mask == Mask::Secret
    }

    /// The default as the README and `--help` show it: in backticks, or a word such as
    /// `unset` or `generated`.
    pub fn documented_default(&self) -> String {
        if let Some(d) = self.meta.default {
            return d.to_string();
        }
        match (self.get)(&Config::default()) {
            Some(v) => format!("`{}`", plain(&v)),
            None => "unset".into(),
        }
    }

    /// The value in `config`, masked as declared; `None` when unset.
    pub fn shown(&self, config: &Config) -> Option<toml::Value> {
        let v = (self.get)(config)?;
        Some(match self.meta.mask {
            Mask::Clear => v,
            Mask::Secret => match v {
                toml::Value::Array(items) => toml::Value::Array(
                    items
                        .iter()
                        .map(|_| toml::Value::String(MASK.into()))
                        .collect(),
                ),
                _ => toml::Value::String(MASK.into()),
            },
            Mask::Url => toml::Value::String(mask_url(&plain(&v))),
        })
    }
}

const MASK: &str = "********";

/// A value as one line of text (lists comma-separated), as the environment gives it.
fn plain(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Hides a URL's password and query string; text that is not a URL is hidden whole.
fn mask_url(v: &str) -> String {
    match url::Url::parse(v) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some(MASK));
            }
            if u.query().is_some() {
                u.set_query(Some(MASK));
            }
            u.to_string()
        }
        Err(_) if v.contains('@') || v.contains('?') => MASK.into(),
        Err(_) => v.to_string(),
    }
}

/// How a setting's type reads from text and shows as TOML.
trait Value: Sized {
    /// Whether a TOML list is accepted (joined with commas, as the environment has it).
    const LIST: bool = false;
    fn parse(text: &str) -> Result<Self, String>;
    /// `None` when unset.
    fn show(&self) -> Option<toml::Value>;
}

impl Value for String {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn show(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.clone()))
    }
}

impl Value for Option<String> {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(Some(text.to_string()))
    }
    fn show(&self) -> Option<toml::Value> {
        self.clone().map(toml::Value::String)
    }
}

impl Value for PathBuf {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> Option<toml::Value> {
        Some(toml::Value::String(self.display().to_string()))
    }
}

impl Value for Option<PathBuf> {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(Some(PathBuf::from(text)))
    }
    fn show(&self) -> Option<toml::Value> {
        self.as_ref()
            .map(|p| toml::Value::String(p.display().to_string()))
    }
}

impl Value for bool {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("expected true or false, got {text:?}")),
        }
    }
    fn show(&self) -> Option<toml::Value> {
        Some(toml::Value::Boolean(*self))
    }
}

macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| format!("not a number: {text}"))
            }
            fn show(&self) -> Option<toml::Value> {
                Some(match i64::try_from(*self) {
                    Ok(n) => toml::Value::Integer(n),
                    Err(_) => toml::Value::String(self.to_string()),
                })
            }
        }
    )*};
}
numbers!(u64, usize, i64);

/// A comma-separated list; blanks between commas are dropped.
impl Value for Vec<String> {
    const LIST: bool = true;
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }
    fn show(&self) -> Option<toml::Value> {
        (!self.is_empty())
            .then(|| toml::Value::Array(self.iter().cloned().map(toml::Value::String).collect()))
    }
}

impl Value for LogFormat {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("expected text or json, got {text:?}")),
        }
    }
    fn show(&self) -> Option<toml::Value> {
        let name = match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        Some(toml::Value::String(name.into()))
    }
}

/// `0,5s,5m,30m,2h,5h,10h,10h`: delays with a unit (`ms`, `s`, `m`, `h`; none: seconds).
impl Value for Vec<Duration> {
    const LIST: bool = true;
    fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                let (n, unit) = s.split_at(split);
                let n: u64 = n.parse().map_err(|_| format!("bad delay {s:?}"))?;
                match unit {
                    "ms" => Ok(Duration::from_millis(n)),
                    "" | "s" => Ok(Duration::from_secs(n)),
                    "m" => Ok(Duration::from_secs(n * 60)),
                    "h" => Ok(Duration::from_secs(n * 3600)),
                    _ => Err(format!("unknown unit in {s:?} (ms, s, m, h)")),
                }
            })
            .collect()
    }
    fn show(&self) -> Option<toml::Value> {
        let one = |d: &Duration| {
            let (ms, s) = (d.as_millis(), d.as_secs());
            match () {
                _ if ms == 0 => "0".to_string(),
                _ if ms % 1000 != 0 => format!("{ms}ms"),
                _ if s % 3600 == 0 => format!("{}h", s / 3600),
                _ if s % 60 == 0 => format!("{}m", s / 60),
                _ => format!("{s}s"),
            }
        };
        (!self.is_empty())
            .then(|| toml::Value::String(self.iter().map(one).collect::<Vec<_>>().join(",")))
    }
}

/// One delay with a unit (`10m`), as in a schedule.
impl Value for Duration {
    fn parse(text: &str) -> Result<Self, String> {
        match <Vec<Duration> as Value>::parse(text)?.as_slice() {
            [d] => Ok(*d),
            _ => Err(format!("expected one duration such as 10m, got {text:?}")),
        }
    }
    fn show(&self) -> Option<toml::Value> {
        vec![*self].show()
    }
}

/// Declares the settings: generates [`Config`], its `Default` and [`SETTINGS`].
/// Each entry: doc comment (the help), `name: Type = default`, then optionally
/// `=> { default: "as documented", mask: Mask::…, }`.
macro_rules! settings {
    ($(
        $section:ident {
            $(
                $(#[doc = $help:literal])+
                $name:ident : $ty:ty = $default:expr $(=> { $($meta:tt)* })? ,
            )*
        }
    )*) => {
        /// The gateway's configuration; see the module documentation. `Debug` masks
        /// secrets.
        #[derive(Clone)]
        pub struct Config {
            $($(
                $(#[doc = $help])+
                pub $name: $ty,
            )*)*
        }

        impl Default for Config {
            fn default() -> Self {
                Self { $($( $name: $default, )*)* }
            }
        }

        /// Every setting, sections in order.
        // A declaration that sets every `Meta` field makes `..Meta::NONE` redundant.
        #[allow(clippy::needless_update)]
        pub static SETTINGS: &[Setting] = &[
            $($(
                Setting {
                    name: stringify!($name),
                    section: Section::$section,
                    help: concat!($($help),+),
                    list: <$ty as Value>::LIST,
                    meta: Meta { $($($meta)*)? ..Meta::NONE },
                    set: |c, v| {
                        c.$name = <$ty as Value>::parse(v)?;
                        Ok(())
                    },
                    get: |c| <$ty as Value>::show(&c.$name),
                },
            )*)*
        ];
    };
}

settings! {
    Server {
        /// Address to bind; port 0 picks a free port (the address bound is logged).
        listen: String = "127.0.0.1:5225".into(),
        /// Base of the URLs handed out (SCIM endpoint, `meta.location`); set it behind a
        /// proxy. Unset: `http://` and the address actually bound.
        external_url: Option<String> = None => {
            default: Some("`http://` + the bound address"),
            mask: Mask::Url,
        },
        /// Admin API keys, comma-separated. Unset: one key is generated into
        /// `admin_key_file` and reused on restart.
        api_keys: Vec<String> = Vec::new() => {
            default: Some("generated"),
            mask: Mask::Secret,
        },
        /// Where the generated admin key is kept (mode 0600) when `api_keys` is unset.
        admin_key_file: PathBuf = PathBuf::from("./scimgate-admin-key"),
        /// Largest request body accepted, in bytes (413 beyond).
        max_body_bytes: usize = 1024 * 1024,
        /// Time a client has to send a request's headers, in milliseconds (408 and the
        /// connection closed beyond; 0 disables).
        header_timeout_ms: u64 = 5_000,
        /// Time a client has to send a request's whole body once its headers arrived, in
        /// milliseconds (408 beyond; 0 disables): a slow sender cannot hold a worker.
        request_timeout_ms: u64 = 30_000,
        /// How long a directory row is reused for SCIM authentication, in milliseconds
        /// (0 reads it on every request). Bounds how late other instances see an admin
        /// change.
        directory_cache_ms: u64 = 1000,
        /// Grace period of a rotated SCIM secret when the rotation does not give one, in
        /// seconds.
        secret_grace_seconds: i64 = 24 * 3600,
        /// Log format on stderr: `text` or `json`.
        log_format: LogFormat = LogFormat::Text,
        /// Which logs are written: a level (`info`, `debug`) or per-module directives
        /// (`scimgate=debug,actix_server=warn`).
        log: String = "info".into(),
    }
    Storage {
        /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`, or
        /// `postgres://user:pass@host/db`.
        database_url: String = "sqlite://scimgate.db".into() => {
            mask: Mask::Url,
        },
        /// Longest a PostgreSQL statement of a request may run, in milliseconds (503
        /// beyond; 0 disables). Deleting a directory and pruning logs are exempt.
        statement_timeout_ms: u64 = crate::store::DEFAULT_STATEMENT_TIMEOUT.as_millis() as u64,
        /// Keys that seal secrets at rest (AES-256-GCM): 32 bytes each, base64,
        /// comma-separated; the first seals, all open. Unset: one key is generated into
        /// `encryption_key_file` and reused on restart.
        encryption_key: Option<String> = None => {
            default: Some("generated"),
            mask: Mask::Secret,
        },
        /// Where the generated encryption key is kept (mode 0600) when `encryption_key`
        /// is unset. Back it up: without it, sealed secrets cannot be opened.
        encryption_key_file: PathBuf = PathBuf::from("./scimgate-encryption-key"),
    }
    Webhooks {
        /// The global endpoint: receives every directory's `dsync.*` events (as Jackson's
        /// global webhook).
        webhook_url: Option<String> = None => {
            mask: Mask::Url,
        },
        /// Signing secret of the global endpoint; required with `webhook_url`.
        webhook_secret: Option<String> = None => {
            mask: Mask::Secret,
        },
        /// Allow webhook URLs on loopback, private and other non-public addresses (for
        /// development and tests); cloud metadata addresses are refused even so.
        webhook_allow_private: bool = false,
        /// Delay before each attempt (units `ms`, `s`, `m`, `h`); its length is the
        /// number of attempts before a delivery goes to the dead letters.
        webhook_retry_schedule: Vec<Duration> = crate::webhooks::delivery::Settings::default_schedule(),
        /// Time allowed for one attempt (connect, send, response), in milliseconds.
        webhook_timeout_ms: u64 = 15_000,
        /// How long an instance's claim on an endpoint lasts without renewal, in
        /// milliseconds; another instance takes over after that. At least twice the
        /// timeout.
        webhook_lease_ms: u64 = 60_000,
        /// Endpoints one instance delivers to at once; 0: this instance delivers nothing
        /// (an API-only instance beside delivering ones).
        webhook_concurrency: usize = 64,
        /// How long attempt logs and finished deliveries are kept, in hours.
        webhook_log_retention_hours: i64 = 7 * 24,
        /// How often an instance looks, unwoken, for committed events to number and for
        /// deliveries due, in milliseconds: a safety net. Its own writes and retries
        /// wake it at once, and on PostgreSQL other instances wake it (LISTEN/NOTIFY).
        poll_ms: u64 = 10_000,
    }
    Providers {
        /// Path to the JSON key Google issued for the operator's service account
        /// (`client_email`, `private_key`, `token_uri`, `client_id`). Unset: Google
        /// Workspace is not offered.
        google_service_account_key: Option<PathBuf> = None,
        /// Base URL of Google's Admin SDK (tests and `scimgate dev-providers` point it at a
        /// local server).
        google_admin_url: String = "https://admin.googleapis.com".into(),
        /// Application (client) id of the operator's Microsoft Entra app. Unset: Microsoft
        /// 365 is not offered.
        microsoft_client_id: Option<String> = None,
        /// Client secret of that Microsoft app.
        microsoft_client_secret: Option<String> = None => {
            mask: Mask::Secret,
        },
        /// Base URL of Microsoft's login (admin consent and tokens).
        microsoft_login_url: String = "https://login.microsoftonline.com".into(),
        /// Base URL of Microsoft Graph.
        microsoft_graph_url: String = "https://graph.microsoft.com".into(),
        /// OAuth client id of the operator's Zoom app (admin-managed). Unset: Zoom is not
        /// offered as an organizational unit's conferencing provider.
        zoom_client_id: Option<String> = None,
        /// That Zoom app's client secret.
        zoom_client_secret: Option<String> = None => {
            mask: Mask::Secret,
        },
        /// Base URL of Zoom's OAuth (authorize and token).
        zoom_oauth_url: String = "https://zoom.us".into(),
        /// Base URL of Zoom's API.
        zoom_api_url: String = "https://api.zoom.us".into(),
        /// OAuth client id of the operator's Webex integration. Unset: Webex is not offered.
        webex_client_id: Option<String> = None,
        /// That Webex integration's client secret.
        webex_client_secret: Option<String> = None => {
            mask: Mask::Secret,
        },
        /// Base URL of the Webex API (authorize, tokens, people).
        webex_api_url: String = "https://webexapis.com".into(),
        /// OAuth client id at Indeed (a generic OAuth 2 provider). Unset: Indeed is not
        /// offered.
        indeed_client_id: Option<String> = None,
        /// That Indeed client's secret.
        indeed_client_secret: Option<String> = None => {
            mask: Mask::Secret,
        },
        /// Indeed's authorize URL.
        indeed_authorize_url: Option<String> = None,
        /// Indeed's token URL.
        indeed_token_url: Option<String> = None,
        /// Indeed's lookup URL, with `{email}` where the address goes.
        indeed_lookup_url: Option<String> = None,
        /// How often each Google Workspace directory is pulled from the Admin SDK (units
        /// `ms`, `s`, `m`, `h`); `POST /api/v1/directory-sync/{id}/sync` pulls one now.
        google_sync_interval: Duration = Duration::from_secs(600),
        /// Time allowed for one provider request, in milliseconds.
        provider_timeout_ms: u64 = 15_000,
        /// Delegated authorizations one instance works on at once (provider lookups and
        /// callbacks in flight); also the directories it follows for provisioning at once,
        /// and the lookups each of them makes at once.
        authorization_concurrency: usize = 64,
        /// Provider attempts for one delegated authorization before its callback says
        /// `provider_error` (retries back off 1 s, 2 s, 4 s … up to a minute, or as
        /// `Retry-After` asks).
        authorization_attempts: u64 = 8,
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                SETTINGS
                    .iter()
                    .map(|s| (s.name, s.shown(self).map(|v| v.to_string()))),
            )
            .finish()
    }
}

/// The declared setting called `name`.
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// Where each setting that is not a default came from (the variable or the file).
pub type Sources = BTreeMap<&'static str, String>;

impl Config {
    /// Defaults ← `file` (if given) ← environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Error> {
        Self::load_traced(file).map(|(c, _)| c)
    }

    /// As [`Config::load`], also saying where each value came from.
    pub fn load_traced(file: Option<&Path>) -> Result<(Self, Sources), Error> {
        let mut c = Config::default();
        let mut sources = Sources::new();
        if let Some(path) = file {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("{origin}: {e}")))?;
            c.apply_toml(&text, &origin, &mut sources)?;
        }
        c.apply_env(env_var, &mut sources)?;
        Ok((c, sources))
    }

    /// Applies a TOML file: keys at the top level or under their section.
    fn apply_toml(&mut self, text: &str, origin: &str, sources: &mut Sources) -> Result<(), Error> {
        let bad = |msg: String| Error::Config(format!("{origin}: {msg}"));
        let table: toml::Table = text.parse().map_err(|e| bad(format!("{e}")))?;
        let mut seen = HashSet::new();
        for (key, value) in &table {
            let entries: Vec<(&Setting, &toml::Value)> = match (Section::named(key), value) {
                (Some(section), toml::Value::Table(inner)) => inner
                    .iter()
                    .map(|(k, v)| match setting(k) {
                        Some(s) if s.section == section => Ok((s, v)),
                        Some(s) => Err(bad(format!(
                            "{k} belongs in [{}], not [{key}]",
                            s.section.name()
                        ))),
                        None => Err(bad(format!("unknown setting {key}.{k}"))),
                    })
                    .collect::<Result<_, _>>()?,
                (Some(_), _) => return Err(bad(format!("[{key}] must be a table"))),
                (None, v) => match setting(key) {
                    Some(s) => vec![(s, v)],
                    None => return Err(bad(format!("unknown setting {key}"))),
                },
            };
            for (s, v) in entries {
                if !seen.insert(s.name) {
                    return Err(bad(format!("{} is set twice", s.name)));
                }
                let text = toml_text(s, v).map_err(|m| bad(format!("{}: {m}", s.name)))?;
                if text.trim().is_empty() {
                    continue;
                }
                (s.set)(self, &text).map_err(|m| bad(format!("{}: {m}", s.name)))?;
                sources.insert(s.name, origin.to_string());
            }
        }
        Ok(())
    }

    /// Applies `SCIMGATE_*` variables (`get` reads one; blank counts as unset).
    fn apply_env(
        &mut self,
        get: impl Fn(&str) -> Result<Option<String>, Error>,
        sources: &mut Sources,
    ) -> Result<(), Error> {
        for s in SETTINGS {
            let name = s.env();
            let Some(v) = get(&name)?.filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            (s.set)(self, &v).map_err(|m| Error::Config(format!("{name}: {m}")))?;
            sources.insert(s.name, name);
        }
        Ok(())
    }

    /// The configuration as a TOML file, by section, with each setting's help and where
    /// its value came from; secrets masked. What `scimgate config` prints.
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = String::from(
            "# The configuration in effect: defaults, then the TOML file, then SCIMGATE_*\n\
             # variables (each key below is also SCIMGATE_<KEY>). Secrets are masked.\n",
        );
        for section in Section::ALL {
            let mut settings = section.settings().peekable();
            if settings.peek().is_none() {
                continue;
            }
            out.push_str(&format!("\n[{}]\n", section.name()));
            for s in settings {
                for line in wrap(s.help(), 86) {
                    out.push_str(&format!("# {line}\n"));
                }
                match s.shown(self) {
                    Some(v) => {
                        out.push_str(&format!("{} = {v}", s.name));
                        if let Some(from) = sources.get(s.name) {
                            out.push_str(&format!("  # from {from}"));
                        }
                        out.push('\n');
                    }
                    None => match s.documented_default().as_str() {
                        "unset" => out.push_str(&format!("# {} is unset\n", s.name)),
                        d => out.push_str(&format!(
                            "# {} is unset ({})\n",
                            s.name,
                            d.replace('`', "")
                        )),
                    },
                }
            }
        }
        out
    }

    /// Opens the configured database with the configured statement timeout.
    pub fn open_db(&self) -> Result<crate::store::Db, Error> {
        crate::store::Db::open_with(
            &self.database_url,
            Some(Duration::from_millis(self.statement_timeout_ms)),
        )
    }

    /// The provisioning follower's settings.
    pub fn provisioning_settings(&self) -> crate::provisioning::Settings {
        crate::provisioning::Settings {
            concurrency: self.authorization_concurrency.max(1),
            lookups: self.authorization_concurrency.max(1),
            lease: self.authorization_settings().lease,
            poll: Duration::from_millis(self.poll_ms.max(1)) * 6,
        }
    }

    /// The Google Workspace directory worker's settings.
    pub fn google_sync_settings(&self, external_url: &str) -> crate::google_sync::Settings {
        crate::google_sync::Settings {
            interval: self.google_sync_interval.max(Duration::from_secs(1)),
            // Renewed as a run goes (each page, each batch of writes).
            lease: Duration::from_millis(self.provider_timeout_ms.saturating_mul(8))
                .max(Duration::from_secs(120)),
            external_url: external_url.to_string(),
        }
    }

    /// The delegated-authorization worker's settings.
    pub fn authorization_settings(&self) -> crate::connect::worker::Settings {
        crate::connect::worker::Settings {
            concurrency: self.authorization_concurrency.max(1),
            // Renewed before each provider lookup, which may take six requests (a token,
            // the lookup, Microsoft's mailbox check, and again after a 401).
            lease: Duration::from_millis(
                self.webhook_lease_ms
                    .max(self.provider_timeout_ms.saturating_mul(6))
                    .max(self.webhook_timeout_ms.saturating_mul(2)),
            ),
            lookup_attempts: u32::try_from(self.authorization_attempts.max(1)).unwrap_or(u32::MAX),
            callback_attempts: 12,
            poll: Duration::from_millis(self.poll_ms.max(1)),
            outbound: crate::outbound::Settings {
                timeout: Duration::from_millis(self.webhook_timeout_ms),
                allow_private: self.webhook_allow_private,
            },
        }
    }

    pub fn delivery_settings(&self) -> Result<crate::webhooks::delivery::Settings, Error> {
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
            concurrency: self.webhook_concurrency,
            allow_private: self.webhook_allow_private,
            poll: Duration::from_millis(self.poll_ms.max(1)),
            sealer: self.sealer()?,
        })
    }

    /// The admin API keys; with none configured, the key in `admin_key_file`, created
    /// (mode 0600) on first start. Returns the file's path when the key is in it.
    pub fn resolve_api_keys(&mut self) -> Result<Option<PathBuf>, Error> {
        if !self.api_keys.is_empty() {
            return Ok(None);
        }
        let path = self.admin_key_file.clone();
        let key = read_or_create(&path, IfEmpty::Replace, || {
            Ok(format!("sgk_{}", crate::secrets::random_token(32)?))
        })?;
        self.api_keys = vec![key];
        Ok(Some(path))
    }

    /// The encryption key; unset, the one in `encryption_key_file`, which is created
    /// (mode 0600) when `generate` allows it. Returns the file's path when the key is in
    /// it. `rekey` does not generate: a new key cannot open what an old one sealed.
    pub fn resolve_encryption_key(&mut self, generate: bool) -> Result<Option<PathBuf>, Error> {
        if self.encryption_key.is_some() {
            return Ok(None);
        }
        let path = self.encryption_key_file.clone();
        let key = if generate {
            read_or_create(&path, IfEmpty::Refuse, crate::secrets::generate_key)?
        } else {
            read_or_create(&path, IfEmpty::Refuse, || {
                Err(Error::Config(format!(
                    "no encryption key: SCIMGATE_ENCRYPTION_KEY is unset and {} does not exist",
                    path.display()
                )))
            })?
        };
        self.encryption_key = Some(key);
        Ok(Some(path))
    }

    /// The keys that seal and open secrets at rest (after [`Config::resolve_encryption_key`]).
    pub fn sealer(&self) -> Result<Sealer, Error> {
        match self.encryption_key.as_deref() {
            Some(keys) => Sealer::from_keys(keys),
            None => Err(Error::Config(
                "no encryption key: set SCIMGATE_ENCRYPTION_KEY (serve generates one into SCIMGATE_ENCRYPTION_KEY_FILE)"
                    .into(),
            )),
        }
    }

    /// `SCIMGATE_*` variables in the environment that are no setting (typos, mostly).
    pub fn unknown_env() -> Vec<String> {
        let known: HashSet<String> = SETTINGS.iter().map(Setting::env).collect();
        let mut unknown: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("SCIMGATE_") && !known.contains(k))
            .filter(|k| !NOT_SETTINGS.contains(&k.as_str()))
            .collect();
        unknown.sort();
        unknown
    }
}

/// Variables that are read but are no setting: where the file is, and the databases of
/// the tests and the fuzzer.
const NOT_SETTINGS: &[&str] = &[
    "SCIMGATE_CONFIG",
    "SCIMGATE_TEST_POSTGRES_URL",
    "SCIMGATE_FUZZ_DATABASE_URL",
];

/// Every setting for `--help`: variable, default, help, by section.
pub fn help_text() -> String {
    let mut out = String::from(
        "Settings: environment variables, or keys of the TOML file given with --config (the\n\
         name in lower case without SCIMGATE_, at the top level or under its [section]).\n\
         The environment wins over the file; `scimgate config` shows what is in effect.\n",
    );
    for section in Section::ALL {
        let mut settings = section.settings().peekable();
        if settings.peek().is_none() {
            continue;
        }
        out.push_str(&format!("\n[{}]\n", section.name()));
        for s in settings {
            out.push_str(&format!(
                "  {}  [default: {}]\n",
                s.env(),
                s.documented_default().replace('`', "")
            ));
            for line in wrap(s.help(), 76) {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    out
}

/// Words of `text` in lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A variable's value; one that is not UTF-8 is an error rather than silently unset.
fn env_var(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::Config(format!("{name} is not valid UTF-8")))
        }
    }
}

/// A TOML value as the text the environment would give: lists only for list settings,
/// joined with commas.
fn toml_text(s: &Setting, v: &toml::Value) -> Result<String, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(t) => Ok(t.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("expected a string, number or boolean".to_string()),
    };
    match v {
        toml::Value::Array(items) if s.list => {
            let items = items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?;
            if items.iter().any(|i| i.contains(',')) {
                return Err("list items cannot contain commas".into());
            }
            Ok(items.join(","))
        }
        toml::Value::Array(_) => Err("expected one value, not a list".into()),
        other => scalar(other),
    }
}

/// What to do with a key file that exists but is empty.
#[derive(Clone, Copy, PartialEq, Eq)]
enum IfEmpty {
    /// Write a new key (the admin key: nothing depends on an old one).
    Replace,
    /// Refuse: secrets may have been sealed with a key that file once held.
    Refuse,
}

/// The trimmed contents of `path`; when it is missing, `generate`d and written (mode
/// 0600). The file appears whole or not at all (written aside, then linked into place),
/// so processes starting together all read the one key that won, never half a file.
fn read_or_create(
    path: &Path,
    if_empty: IfEmpty,
    generate: impl FnOnce() -> Result<String, Error>,
) -> Result<String, Error> {
    let cannot = |what: &str, e: std::io::Error| {
        Error::Config(format!("cannot {what} {}: {e}", path.display()))
    };
    let read = || std::fs::read_to_string(path).map(|t| t.trim().to_string());
    let empty = match read() {
        Ok(text) if !text.is_empty() => return Ok(text),
        Ok(_) if if_empty == IfEmpty::Refuse => {
            return Err(Error::Config(format!(
                "{} is empty: restore the key it held, or delete it to generate a new one",
                path.display()
            )))
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(cannot("read", e)),
    };
    let value = generate()?;
    let aside = path.with_file_name(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        crate::secrets::random_token(6)?
    ));
    write_private(&aside, &value).map_err(|e| cannot("write", e))?;
    let placed = if empty {
        std::fs::rename(&aside, path)
    } else {
        std::fs::hard_link(&aside, path)
    };
    let _ = std::fs::remove_file(&aside);
    match placed {
        Ok(()) => Ok(value),
        // Another process placed its key first: that one is the key.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read().map_err(|e| cannot("read", e))
        }
        Err(e) => Err(cannot("write", e)),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    writeln!(f, "{contents}")?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, Error> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| Ok(pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn env_overrides_defaults() {
        let mut c = Config::default();
        let mut sources = Sources::new();
        c.apply_env(
            env(&[
                ("SCIMGATE_API_KEYS", "a, b,,"),
                ("SCIMGATE_WEBHOOK_ALLOW_PRIVATE", "true"),
                ("SCIMGATE_LOG_FORMAT", "json"),
                ("SCIMGATE_SECRET_GRACE_SECONDS", "60"),
                ("SCIMGATE_EXTERNAL_URL", "  "),
            ]),
            &mut sources,
        )
        .unwrap();
        assert_eq!(c.api_keys, vec!["a", "b"]);
        assert!(c.webhook_allow_private);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.secret_grace_seconds, 60);
        assert_eq!(c.external_url, None, "blank is unset");
        assert_eq!(c.listen, "127.0.0.1:5225");
        assert_eq!(sources["api_keys"], "SCIMGATE_API_KEYS");
        let err = c
            .apply_env(env(&[("SCIMGATE_LOG_FORMAT", "xml")]), &mut sources)
            .unwrap_err();
        assert!(err.to_string().contains("SCIMGATE_LOG_FORMAT"), "{err}");
        assert!(c
            .apply_env(env(&[("SCIMGATE_MAX_BODY_BYTES", "lots")]), &mut sources)
            .is_err());
    }

    #[test]
    fn retry_schedule_parses_units() {
        assert_eq!(
            <Vec<Duration> as Value>::parse("0, 50ms,5s,2m,1h").unwrap(),
            vec![
                Duration::ZERO,
                Duration::from_millis(50),
                Duration::from_secs(5),
                Duration::from_secs(120),
                Duration::from_secs(3600)
            ]
        );
        assert!(<Vec<Duration> as Value>::parse("5d").is_err());
        assert!(<Vec<Duration> as Value>::parse("x").is_err());
        assert_eq!(
            setting("webhook_retry_schedule")
                .unwrap()
                .documented_default(),
            "`0,5s,5m,30m,2h,5h,10h,10h`"
        );
        let mut c = Config {
            encryption_key: Some(crate::secrets::generate_key().unwrap()),
            ..Config::default()
        };
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
        c.encryption_key = None;
        assert!(c.delivery_settings().is_err(), "no key, no sealer");
    }

    #[test]
    fn toml_file_is_read_flat_or_by_section() {
        let mut c = Config::default();
        let mut sources = Sources::new();
        c.apply_toml(
            "listen = \"0.0.0.0:1\"\napi_keys = [\"k\"]\nlog_format = \"json\"\n\
             [webhooks]\nwebhook_timeout_ms = 100\nwebhook_retry_schedule = [\"0\", \"5s\"]\n\
             [storage]\ndatabase_url = \"postgres://x\"\n[providers]\n",
            "f.toml",
            &mut sources,
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:1");
        assert_eq!(c.api_keys, vec!["k"]);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.webhook_timeout_ms, 100);
        assert_eq!(c.webhook_retry_schedule.len(), 2);
        assert_eq!(c.database_url, "postgres://x");
        assert_eq!(sources["listen"], "f.toml");
        for bad in [
            "nope = 1",
            "[server]\ndatabase_url = \"x\"",
            "[server]\nnope = 1",
            "listen = \"a\"\n[server]\nlisten = \"b\"",
            "listen = [\"a\"]",
            "api_keys = [\"a,b\"]",
            "max_body_bytes = 1.5",
            "server = 1",
            "webhook_allow_private = \"maybe\"",
        ] {
            let err = Config::default()
                .apply_toml(bad, "f.toml", &mut Sources::new())
                .unwrap_err();
            assert!(err.to_string().contains("f.toml"), "{bad}: {err}");
        }
    }

    #[test]
    fn secrets_are_masked() {
        let c = Config {
            api_keys: vec!["adminkey1".into(), "adminkey2".into()],
            webhook_secret: Some("hooksecret".into()),
            encryption_key: Some("enckey".into()),
            database_url: "postgres://u:dbpass@h/db?sslmode=require".into(),
            webhook_url: Some("https://h.example/x?token=qtok".into()),
            microsoft_client_secret: Some("mssecret".into()),
            ..Config::default()
        };
        let shown = format!("{c:?}\n{}", c.render(&Sources::new()));
        for secret in [
            "adminkey",
            "hooksecret",
            "enckey",
            "dbpass",
            "qtok",
            "mssecret",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("postgres://u:********@h/db"), "{shown}");
        assert!(shown.contains("[storage]") && !shown.contains("[dashboard]"));
        assert!(help_text().contains("SCIMGATE_WEBHOOK_LEASE_MS  [default: 60000]"));
    }

    #[test]
    fn key_files_are_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            encryption_key_file: dir.path().join("enc"),
            ..Config::default()
        };
        assert!(
            c.clone().resolve_encryption_key(false).is_err(),
            "rekey never generates"
        );
        assert_eq!(
            c.resolve_encryption_key(true).unwrap(),
            Some(dir.path().join("enc"))
        );
        let key = c.encryption_key.clone().unwrap();
        c.sealer().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("enc"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        c.encryption_key = None;
        c.resolve_encryption_key(false).unwrap();
        assert_eq!(c.encryption_key.as_deref(), Some(key.as_str()));

        // Started together, every process ends up with the one key in the file.
        let path = dir.path().join("raced");
        let keys: Vec<String> = std::thread::scope(|s| {
            let racers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        read_or_create(&path, IfEmpty::Refuse, crate::secrets::generate_key)
                            .unwrap()
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(keys.iter().all(|k| k == on_disk.trim()), "{keys:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "nothing left aside"
        );

        std::fs::write(dir.path().join("empty"), "").unwrap();
        let mut c = Config {
            encryption_key_file: dir.path().join("empty"),
            admin_key_file: dir.path().join("empty"),
            ..Config::default()
        };
        assert!(
            c.resolve_encryption_key(true).is_err(),
            "an empty key file is refused"
        );
        c.resolve_api_keys().unwrap();
        assert!(
            c.api_keys[0].starts_with("sgk_"),
            "an empty admin key file is replaced"
        );
    }
}
