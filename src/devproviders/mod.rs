//! Stand-ins for Google, Microsoft, Zoom, Webex and Indeed that speak their real wire
//! shapes, for tests and for `scimgate dev-providers`: one actix server, `/google/...`,
//! `/microsoft/...`, `/zoom/...`, `/webex/...`, `/indeed/...`, with state that tests
//! change directly ([`FakeState`]) and the command line's walkthrough changes through
//! `/_control/...`. The conferencing fakes' sign-in pages list one
//! `<a class="authorize" data-account="…">` link per account (signing in as its first
//! user) and an `<a class="decline">`.
//!
//! Written from the providers' documentation, not from our connectors, and never
//! importing them: a fake that shared their code would check us against ourselves.
//!
//! For development only: it issues tokens to anyone who asks right, and `/_control`
//! (which answers loopback peers only) lets any local process rewrite it:
//!
//! | request | body |
//! |---|---|
//! | `POST /_control/google/users` | `{"email", "is_admin"}` |
//! | `POST /_control/google/users/update` | `{"email", "new_email"?, "given_name"?, "family_name"?, "suspended"?, "aliases"?, "is_admin"?, "sign_in"?}` (a new address keeps the id; `sign_in` changes only the etag and `lastLoginTime`) |
//! | `POST /_control/google/users/delete` | `{"email"}` (with their memberships) |
//! | `POST /_control/google/groups` | `{"email", "name"}` (a new name for an existing group) |
//! | `POST /_control/google/groups/delete` | `{"email"}` |
//! | `POST /_control/google/members` | `{"group", "email", "role"?}` (a user, a group, or an outside address) |
//! | `POST /_control/google/members/delete` | `{"group", "email"}` |
//! | `POST /_control/google/seed` | `{"domain", "users", "groups", "members_per_group"}`: `u{i}@domain` (every 10th suspended), groups `g{j}@domain` |
//! | `POST /_control/google/delegations` | `{"domain", "scopes": [...]}` |
//! | `POST /_control/microsoft/tenants` | `{"tenant_id", "domains": [...], "consented"?}` |
//! | `POST /_control/microsoft/users` | `{"email", "mailbox"}` (the tenant with its domain) |
//! | `POST /_control/microsoft/consents` | `{"tenant_id"}` (as the consent page does) |
//! | `POST /_control/zoom/accounts` | `{"account_id"}` |
//! | `POST /_control/zoom/users` | `{"account_id", "email", "status"?}` (`active`, `inactive`, `pending`) |
//! | `POST /_control/webex/orgs` | `{"org_id"}` |
//! | `POST /_control/webex/users` | `{"org_id", "email"}` |
//! | `POST /_control/indeed/employers` | `{"employer_id"}` |
//! | `POST /_control/indeed/users` | `{"employer_id", "email"}` |
//! | `POST /_control/faults` | `{"prefix", "status", "times"?, "retry_after"?, "skip"?}`: after `skip` (0) more requests, the next `times` (1) requests under `prefix` (`google/token`, `google/admin`, `microsoft/token`, `microsoft/graph`, `microsoft/login`, and `oauth` (the sign-in pages), `token`, `api` under `zoom/`, `webex/`, `indeed/`) answer `status` in the provider's error shape |
//! | `POST /_control/expire_tokens` | none: every access token issued so far answers 401 |

mod google;
mod indeed;
mod microsoft;
mod oauth;
mod state;
mod webex;
mod zoom;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde::Deserialize;

use crate::error::Error;
use crate::secrets::random_token;

pub use state::{Conferencing, FakeState, GoogleUserChange, PREFIXES};

/// The Google scopes the demo data delegates (the fakes do not import the connector's):
/// reading users (Enterprise Connect), and groups and members (directories).
const DEMO_GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const DEMO_GOOGLE_DIRECTORY_SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
];
const DEMO_TENANT: &str = "11111111-2222-3333-4444-555555555555";
const DEMO_ZOOM_ACCOUNT: &str = "zacc_demo";
const DEMO_WEBEX_ORG: &str = "org_demo";
const DEMO_INDEED_EMPLOYER: &str = "emp_demo";

/// The service account the fake Google issued: one RSA key per process. Generating one
/// takes 0.1–0.3 s here (dependencies at opt-level 1), far more at opt-level 0; tests
/// that each start the fakes share it.
struct IssuedKey {
    pkcs8_pem: String,
    public: rsa::PublicKey,
    client_email: String,
    client_id: String,
    private_key_id: String,
}

static ISSUED_KEY: OnceLock<Result<Arc<IssuedKey>, String>> = OnceLock::new();

fn issued_key() -> Result<Arc<IssuedKey>, Error> {
    ISSUED_KEY
        .get_or_init(|| generate_key().map(Arc::new))
        .clone()
        .map_err(Error::Internal)
}

fn generate_key() -> Result<IssuedKey, String> {
    let private = rsa::PrivateKey::new(&mut OsRandom, 2048)
        .map_err(|e| format!("generating the fake Google key: {e}"))?;
    let pkcs8_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| format!("encoding the fake Google key: {e}"))?
        .to_string();
    let mut digits = [0u8; 8];
    getrandom::fill(&mut digits).map_err(|e| format!("no randomness: {e}"))?;
    let mut key_id = [0u8; 20];
    getrandom::fill(&mut key_id).map_err(|e| format!("no randomness: {e}"))?;
    Ok(IssuedKey {
        pkcs8_pem,
        public: private.to_public_key(),
        client_email: "scimgate-dev@scimgate-dev.iam.gserviceaccount.com".into(),
        // Google's client ids are 21 digits.
        client_id: format!("1{:020}", u64::from_be_bytes(digits)),
        private_key_id: hex::encode(key_id),
    })
}

/// `bytes` random bytes in hex.
fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

/// The operating system's randomness for rsa's key generation (rsa's own needs a newer
/// getrandom than the crate's).
struct OsRandom;

#[derive(Debug, thiserror::Error)]
#[error("the operating system gave no randomness")]
struct NoRandomness;

impl rsa::rand_core::TryRng for OsRandom {
    type Error = NoRandomness;
    fn try_next_u32(&mut self) -> Result<u32, NoRandomness> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, NoRandomness> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), NoRandomness> {
        getrandom::fill(dst).map_err(|_| NoRandomness)
    }
}

impl rsa::rand_core::TryCryptoRng for OsRandom {}

/// What every handler reaches.
struct Shared {
    state: Arc<FakeState>,
    key: Arc<IssuedKey>,
    /// `http://addr`, for the token URI the fake Google expects as `aud`.
    base: String,
    microsoft_client_id: String,
    microsoft_client_secret: String,
    /// The OAuth clients (id, secret) the conferencing fakes accept.
    zoom_client: (String, String),
    webex_client: (String, String),
    indeed_client: (String, String),
}

impl Shared {
    fn client(&self, provider: Conferencing) -> &(String, String) {
        match provider {
            Conferencing::Zoom => &self.zoom_client,
            Conferencing::Webex => &self.webex_client,
            Conferencing::Indeed => &self.indeed_client,
        }
    }

    fn google_token_uri(&self) -> String {
        format!("{}/google/token", self.base)
    }
}

/// The running fakes.
pub struct DevProviders {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    shared: Arc<Shared>,
}

impl DevProviders {
    /// Binds `listen` and serves the fakes on the current tokio runtime (call it inside
    /// one). The first call in a process generates the fake Google's RSA key.
    pub async fn start(listen: &str) -> Result<DevProviders, Error> {
        let key = tokio::task::spawn_blocking(issued_key)
            .await
            .map_err(|e| Error::Internal(format!("generating the fake Google key: {e}")))??;
        let listener = TcpListener::bind(listen)
            .map_err(|e| Error::Config(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("no local address: {e}")))?;
        let state = Arc::new(FakeState::default());
        let shared = Arc::new(Shared {
            state: state.clone(),
            key,
            base: format!("http://{addr}"),
            microsoft_client_id: uuid::Uuid::new_v4().to_string(),
            microsoft_client_secret: format!("dev~{}", random_token(30)?),
            // Zoom's client ids are 22 characters, secrets 32; Webex's are `C` and 64 hex
            // digits, secrets 64 hex digits.
            zoom_client: (
                random_token(16)?.replace(['-', '_'], "x"),
                random_token(24)?,
            ),
            webex_client: (format!("C{}", random_hex(32)?), random_hex(32)?),
            indeed_client: (
                format!("indeed-dev-{}", random_token(9)?),
                random_token(30)?,
            ),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(google::routes)
                .configure(microsoft::routes)
                .configure(zoom::routes)
                .configure(webex::routes)
                .configure(indeed::routes)
                .configure(control_routes)
        })
        // A test server: one worker, no signal handling of its own, quick to stop.
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(|e| Error::Config(format!("cannot serve on {addr}: {e}")))?
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        Ok(DevProviders {
            addr,
            state,
            handle,
            server,
            shared,
        })
    }

    /// `http://addr/google/token`: the `token_uri` of the issued key, and the `aud` the
    /// fake expects.
    pub fn google_token_uri(&self) -> String {
        self.shared.google_token_uri()
    }

    /// `http://addr/google`, so users are at `{admin}/admin/directory/v1/users/{key}`.
    pub fn google_admin_url(&self) -> String {
        format!("{}/google", self.shared.base)
    }

    /// The service-account key JSON this fake issued, in Google's format.
    pub fn google_key_json(&self) -> String {
        let key = &self.shared.key;
        serde_json::json!({
            "type": "service_account",
            "project_id": "scimgate-dev",
            "private_key_id": key.private_key_id,
            "private_key": key.pkcs8_pem,
            "client_email": key.client_email,
            "client_id": key.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.google_token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                key.client_email.replace('@', "%40")
            ),
            "universe_domain": "googleapis.com",
        })
        .to_string()
    }

    /// The issued service account's client id (what a workspace admin delegates to).
    pub fn google_client_id(&self) -> &str {
        &self.shared.key.client_id
    }

    pub fn microsoft_login_url(&self) -> String {
        format!("{}/microsoft/login", self.shared.base)
    }

    pub fn microsoft_graph_url(&self) -> String {
        format!("{}/microsoft/graph", self.shared.base)
    }

    /// The app registration's client id and secret the fake accepts.
    pub fn microsoft_client(&self) -> (String, String) {
        (
            self.shared.microsoft_client_id.clone(),
            self.shared.microsoft_client_secret.clone(),
        )
    }

    /// `http://addr/zoom`: the authorize page is `{oauth}/oauth/authorize`, tokens
    /// `{oauth}/oauth/token`.
    pub fn zoom_oauth_url(&self) -> String {
        format!("{}/zoom", self.shared.base)
    }

    /// `http://addr/zoom/api`: users are at `{api}/v2/users/{id|email|me}`.
    pub fn zoom_api_url(&self) -> String {
        format!("{}/zoom/api", self.shared.base)
    }

    /// `http://addr/webex`: `{api}/v1/authorize`, `{api}/v1/access_token`, `{api}/v1/people`.
    pub fn webex_api_url(&self) -> String {
        format!("{}/webex", self.shared.base)
    }

    pub fn indeed_authorize_url(&self) -> String {
        format!("{}/indeed/oauth/authorize", self.shared.base)
    }

    pub fn indeed_token_url(&self) -> String {
        format!("{}/indeed/oauth/token", self.shared.base)
    }

    /// The lookup URL template, with `{email}`.
    pub fn indeed_lookup_url(&self) -> String {
        format!("{}/indeed/api/users/{{email}}", self.shared.base)
    }

    /// The Zoom OAuth app's client id and secret the fake accepts.
    pub fn zoom_client(&self) -> (String, String) {
        self.shared.zoom_client.clone()
    }

    /// The Webex integration's client id and secret the fake accepts.
    pub fn webex_client(&self) -> (String, String) {
        self.shared.webex_client.clone()
    }

    /// The Indeed client's id and secret the fake accepts.
    pub fn indeed_client(&self) -> (String, String) {
        self.shared.indeed_client.clone()
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        let _ = self.server.await;
    }

    /// The demo data of `scimgate dev-providers` (and of tests that want it).
    pub fn seed_demo(&self) -> Result<(), Error> {
        let s = &self.state;
        s.add_google_user("admin@example.com", true)?;
        s.add_google_user("alice@example.com", false)?;
        s.add_google_user("bob@example.com", false)?;
        s.grant_delegation("example.com", &[DEMO_GOOGLE_SCOPE]);
        s.grant_delegation("example.com", &DEMO_GOOGLE_DIRECTORY_SCOPES);
        s.add_google_group("engineering@example.com", "Engineering")?;
        s.add_google_member("engineering@example.com", "alice@example.com", "OWNER")?;
        s.add_google_member("engineering@example.com", "bob@example.com", "MEMBER")?;
        s.add_tenant(DEMO_TENANT, &["contoso.example"]);
        s.add_microsoft_user("carol@contoso.example", true)?;
        s.add_microsoft_user("dave@contoso.example", false)?;
        s.add_zoom_account(DEMO_ZOOM_ACCOUNT)?;
        s.add_zoom_user(DEMO_ZOOM_ACCOUNT, "alice@example.com", "active")?;
        s.add_zoom_user(DEMO_ZOOM_ACCOUNT, "carol@contoso.example", "active")?;
        s.add_zoom_user(DEMO_ZOOM_ACCOUNT, "bob@example.com", "pending")?;
        s.add_webex_org(DEMO_WEBEX_ORG)?;
        s.add_webex_user(DEMO_WEBEX_ORG, "alice@example.com")?;
        s.add_webex_user(DEMO_WEBEX_ORG, "dave@contoso.example")?;
        s.add_indeed_employer(DEMO_INDEED_EMPLOYER)?;
        s.add_indeed_user(DEMO_INDEED_EMPLOYER, "carol@contoso.example")?;
        Ok(())
    }
}

/// `scimgate dev-providers`: starts the fakes on `listen` with the demo data, writes the
/// Google key to `key_file` (mode 0600), prints the settings that point a gateway at
/// them, and serves until Ctrl-C.
pub async fn run_cli(listen: &str, key_file: &Path) -> Result<(), Error> {
    let fakes = DevProviders::start(listen).await?;
    fakes.seed_demo()?;
    write_private_file(key_file, &fakes.google_key_json())?;
    let (client_id, secret) = fakes.microsoft_client();
    let key_path = std::fs::canonicalize(key_file).unwrap_or_else(|_| key_file.to_path_buf());
    println!(
        "# Fake Google, Microsoft, Zoom, Webex and Indeed on http://{} (development only).",
        fakes.addr
    );
    println!(
        "# Google: example.com, admin@example.com (admin), alice@, bob@; delegation granted for"
    );
    println!("#   {DEMO_GOOGLE_SCOPE}");
    for scope in DEMO_GOOGLE_DIRECTORY_SCOPES {
        println!("#   {scope}");
    }
    println!("#   (group engineering@example.com: alice@, bob@)");
    println!("#   to client id {}.", fakes.google_client_id());
    println!("# Microsoft: tenant {DEMO_TENANT} (contoso.example, not yet consented),");
    println!("#   carol@contoso.example (mailbox), dave@contoso.example (no mailbox).");
    println!(
        "# Zoom: account {DEMO_ZOOM_ACCOUNT}: alice@example.com (signs in), carol@contoso.example,"
    );
    println!(
        "#   bob@example.com (pending). Webex: org {DEMO_WEBEX_ORG}: alice@example.com (signs in),"
    );
    println!(
        "#   dave@contoso.example. Indeed: employer {DEMO_INDEED_EMPLOYER}: carol@contoso.example."
    );
    println!(
        "# Change them with POST http://{}/_control/... (see src/devproviders/mod.rs).",
        fakes.addr
    );
    println!("SCIMGATE_GOOGLE_SERVICE_ACCOUNT_KEY={}", key_path.display());
    println!("SCIMGATE_GOOGLE_ADMIN_URL={}", fakes.google_admin_url());
    println!("SCIMGATE_MICROSOFT_CLIENT_ID={client_id}");
    println!("SCIMGATE_MICROSOFT_CLIENT_SECRET={secret}");
    println!(
        "SCIMGATE_MICROSOFT_LOGIN_URL={}",
        fakes.microsoft_login_url()
    );
    println!(
        "SCIMGATE_MICROSOFT_GRAPH_URL={}",
        fakes.microsoft_graph_url()
    );
    let (zoom_id, zoom_secret) = fakes.zoom_client();
    println!("SCIMGATE_ZOOM_CLIENT_ID={zoom_id}");
    println!("SCIMGATE_ZOOM_CLIENT_SECRET={zoom_secret}");
    println!("SCIMGATE_ZOOM_OAUTH_URL={}", fakes.zoom_oauth_url());
    println!("SCIMGATE_ZOOM_API_URL={}", fakes.zoom_api_url());
    let (webex_id, webex_secret) = fakes.webex_client();
    println!("SCIMGATE_WEBEX_CLIENT_ID={webex_id}");
    println!("SCIMGATE_WEBEX_CLIENT_SECRET={webex_secret}");
    println!("SCIMGATE_WEBEX_API_URL={}", fakes.webex_api_url());
    let (indeed_id, indeed_secret) = fakes.indeed_client();
    println!("SCIMGATE_INDEED_CLIENT_ID={indeed_id}");
    println!("SCIMGATE_INDEED_CLIENT_SECRET={indeed_secret}");
    println!(
        "SCIMGATE_INDEED_AUTHORIZE_URL={}",
        fakes.indeed_authorize_url()
    );
    println!("SCIMGATE_INDEED_TOKEN_URL={}", fakes.indeed_token_url());
    println!("SCIMGATE_INDEED_LOOKUP_URL={}", fakes.indeed_lookup_url());
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Error::Internal(format!("waiting for Ctrl-C: {e}")))?;
    fakes.stop().await;
    Ok(())
}

/// Writes `text` to a file only its owner may read (it holds a private key).
fn write_private_file(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let fail = |e: std::io::Error| Error::Config(format!("cannot write {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode when opened: tighten it first.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
        }
    }
    let mut file = options.open(path).map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)
}

// --- shared by the fakes ---

/// Counts the request under `prefix`, waits the configured latency, and answers with
/// the due fault, if any, in the shape `fault` gives for its status.
async fn arrive(
    shared: &Shared,
    prefix: &str,
    fault: fn(u16) -> HttpResponse,
) -> Option<HttpResponse> {
    let (latency, due) = shared.state.arrive(prefix);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let due = due?;
    let mut response = fault(due.status);
    if let Some(secs) = due.retry_after {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&secs.to_string()) {
            response
                .headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, value);
        }
    }
    Some(response)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn json(code: u16, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status(code))
        .content_type("application/json; charset=UTF-8")
        .body(body.to_string())
}

fn html(code: u16, body: String) -> HttpResponse {
    HttpResponse::build(status(code))
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// `redirect_uri` (http or https) with `pairs` added to its query.
fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Some(url.to_string())
}

fn found(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("location", location))
        .finish()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The bearer token of a request.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// An `application/x-www-form-urlencoded` body (or query) as pairs; the last of a repeated
/// name wins.
fn form(bytes: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The remaining lifetime the fakes give their access tokens.
const TOKEN_SECONDS: u64 = 3599;

fn token_lifetime() -> Duration {
    Duration::from_secs(TOKEN_SECONDS)
}

// --- the control API ---

fn control_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/_control/google/users",
        web::post().to(control_google_user),
    )
    .route(
        "/_control/google/users/update",
        web::post().to(control_google_user_update),
    )
    .route(
        "/_control/google/users/delete",
        web::post().to(control_google_user_delete),
    )
    .route(
        "/_control/google/groups",
        web::post().to(control_google_group),
    )
    .route(
        "/_control/google/groups/delete",
        web::post().to(control_google_group_delete),
    )
    .route(
        "/_control/google/members",
        web::post().to(control_google_member),
    )
    .route(
        "/_control/google/members/delete",
        web::post().to(control_google_member_delete),
    )
    .route("/_control/google/seed", web::post().to(control_google_seed))
    .route(
        "/_control/google/delegations",
        web::post().to(control_delegation),
    )
    .route(
        "/_control/microsoft/tenants",
        web::post().to(control_tenant),
    )
    .route(
        "/_control/microsoft/users",
        web::post().to(control_microsoft_user),
    )
    .route(
        "/_control/microsoft/consents",
        web::post().to(control_consent),
    )
    .route(
        "/_control/zoom/accounts",
        web::post().to(control_zoom_account),
    )
    .route("/_control/zoom/users", web::post().to(control_zoom_user))
    .route("/_control/webex/orgs", web::post().to(control_webex_org))
    .route("/_control/webex/users", web::post().to(control_webex_user))
    .route(
        "/_control/indeed/employers",
        web::post().to(control_indeed_employer),
    )
    .route(
        "/_control/indeed/users",
        web::post().to(control_indeed_user),
    )
    .route("/_control/faults", web::post().to(control_fault))
    .route("/_control/expire_tokens", web::post().to(control_expire));
}

/// `/_control` answers loopback peers only, whatever address the fakes listen on.
fn local(req: &HttpRequest) -> Option<HttpResponse> {
    match req.peer_addr() {
        Some(peer) if peer.ip().is_loopback() => None,
        _ => Some(json(
            403,
            serde_json::json!({"error": "the control API answers loopback clients only"}),
        )),
    }
}

fn done(result: Result<(), Error>) -> HttpResponse {
    match result {
        Ok(()) => json(200, serde_json::json!({"ok": true})),
        Err(e) => json(400, serde_json::json!({"error": e.public_message()})),
    }
}

#[derive(Deserialize)]
struct GoogleUserBody {
    email: String,
    #[serde(default)]
    is_admin: bool,
}

async fn control_google_user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<GoogleUserBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_google_user(&body.email, body.is_admin))
}

#[derive(Deserialize)]
struct GoogleUserUpdateBody {
    email: String,
    #[serde(flatten)]
    change: GoogleUserChange,
}

async fn control_google_user_update(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<GoogleUserUpdateBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    let body = body.into_inner();
    done(shared.state.update_google_user(&body.email, body.change))
}

#[derive(Deserialize)]
struct EmailBody {
    email: String,
}

async fn control_google_user_delete(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<EmailBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    shared.state.remove_google_user(&body.email);
    done(Ok(()))
}

#[derive(Deserialize)]
struct GoogleGroupBody {
    email: String,
    name: String,
}

async fn control_google_group(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<GoogleGroupBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_google_group(&body.email, &body.name))
}

async fn control_google_group_delete(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<EmailBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    shared.state.remove_google_group(&body.email);
    done(Ok(()))
}

#[derive(Deserialize)]
struct GoogleMemberBody {
    group: String,
    email: String,
    #[serde(default = "member_role")]
    role: String,
}

fn member_role() -> String {
    "MEMBER".into()
}

async fn control_google_member(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<GoogleMemberBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(
        shared
            .state
            .add_google_member(&body.group, &body.email, &body.role),
    )
}

async fn control_google_member_delete(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<GoogleMemberBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    shared.state.remove_google_member(&body.group, &body.email);
    done(Ok(()))
}

#[derive(Deserialize)]
struct GoogleSeedBody {
    domain: String,
    users: usize,
    #[serde(default)]
    groups: usize,
    #[serde(default)]
    members_per_group: usize,
}

async fn control_google_seed(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<GoogleSeedBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    let b = body.into_inner();
    let state = shared.state.clone();
    // Seeding a hundred thousand users takes a while: off the server's thread.
    let result =
        web::block(move || state.seed_google(&b.domain, b.users, b.groups, b.members_per_group))
            .await
            .unwrap_or_else(|e| Err(Error::Internal(format!("seeding: {e}"))));
    done(result)
}

#[derive(Deserialize)]
struct DelegationBody {
    domain: String,
    scopes: Vec<String>,
}

async fn control_delegation(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<DelegationBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    let scopes: Vec<&str> = body.scopes.iter().map(String::as_str).collect();
    shared.state.grant_delegation(&body.domain, &scopes);
    done(Ok(()))
}

#[derive(Deserialize)]
struct TenantBody {
    tenant_id: String,
    domains: Vec<String>,
    #[serde(default)]
    consented: bool,
}

async fn control_tenant(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<TenantBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    let domains: Vec<&str> = body.domains.iter().map(String::as_str).collect();
    shared.state.add_tenant(&body.tenant_id, &domains);
    if body.consented {
        shared.state.consent(&body.tenant_id);
    }
    done(Ok(()))
}

#[derive(Deserialize)]
struct MicrosoftUserBody {
    email: String,
    #[serde(default = "yes")]
    mailbox: bool,
}

fn yes() -> bool {
    true
}

async fn control_microsoft_user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<MicrosoftUserBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_microsoft_user(&body.email, body.mailbox))
}

#[derive(Deserialize)]
struct ConsentBody {
    tenant_id: String,
}

async fn control_consent(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<ConsentBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    if shared.state.consent(&body.tenant_id) {
        done(Ok(()))
    } else {
        json(404, serde_json::json!({"error": "no such tenant"}))
    }
}

#[derive(Deserialize)]
struct ZoomAccountBody {
    account_id: String,
}

async fn control_zoom_account(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<ZoomAccountBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_zoom_account(&body.account_id))
}

#[derive(Deserialize)]
struct ZoomUserBody {
    account_id: String,
    email: String,
    #[serde(default = "active")]
    status: String,
}

fn active() -> String {
    "active".into()
}

async fn control_zoom_user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<ZoomUserBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(
        shared
            .state
            .add_zoom_user(&body.account_id, &body.email, &body.status),
    )
}

#[derive(Deserialize)]
struct WebexOrgBody {
    org_id: String,
}

async fn control_webex_org(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<WebexOrgBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_webex_org(&body.org_id))
}

#[derive(Deserialize)]
struct WebexUserBody {
    org_id: String,
    email: String,
}

async fn control_webex_user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<WebexUserBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_webex_user(&body.org_id, &body.email))
}

#[derive(Deserialize)]
struct IndeedEmployerBody {
    employer_id: String,
}

async fn control_indeed_employer(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<IndeedEmployerBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_indeed_employer(&body.employer_id))
}

#[derive(Deserialize)]
struct IndeedUserBody {
    employer_id: String,
    email: String,
}

async fn control_indeed_user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<IndeedUserBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    done(shared.state.add_indeed_user(&body.employer_id, &body.email))
}

#[derive(Deserialize)]
struct FaultBody {
    prefix: String,
    status: u16,
    #[serde(default = "once")]
    times: u32,
    retry_after: Option<u64>,
    #[serde(default)]
    skip: u32,
}

fn once() -> u32 {
    1
}

async fn control_fault(
    req: HttpRequest,
    shared: web::Data<Shared>,
    body: web::Json<FaultBody>,
) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    if !PREFIXES.contains(&body.prefix.trim_matches('/')) {
        return json(
            400,
            serde_json::json!({"error": format!("prefix must be one of {}", PREFIXES.join(", "))}),
        );
    }
    shared.state.fail_after(
        &body.prefix,
        body.skip,
        body.status,
        body.times,
        body.retry_after,
    );
    done(Ok(()))
}

async fn control_expire(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(refusal) = local(&req) {
        return refusal;
    }
    shared.state.expire_tokens();
    done(Ok(()))
}
