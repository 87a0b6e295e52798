//! The HTTP layer: one route table, one error type, extractors. Handlers stay thin and
//! call the directory service.

pub mod admin;
pub mod admin_connect;
pub mod admin_google;
pub mod admin_setup_links;
pub mod admin_webhooks;
pub mod connect_api;
pub mod error;
pub mod extract;
pub mod guard;
pub mod health;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod scim;
pub mod setup_page;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle, Service};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use futures_util::future::Either;

use crate::config::Config;
use crate::directory::directories::DirectoryCache;
use crate::error::Error;
use crate::store::Db;
use crate::webhooks::delivery::Dispatcher;

/// What every handler can reach.
pub struct AppState {
    pub db: Db,
    /// Base of the URLs we hand out, without a trailing slash.
    pub external_url: String,
    pub api_keys: Arc<Vec<String>>,
    pub max_body_bytes: usize,
    pub secret_grace_seconds: i64,
    /// Directory rows for SCIM authentication (see [`DirectoryCache`]).
    pub directories: DirectoryCache,
    /// Whether webhook URLs may point at private addresses.
    pub webhook_allow_private: bool,
    /// The delivery workers, woken by admin changes that queue work (replay, enable).
    pub dispatcher: Dispatcher,
    /// Time allowed to receive a request body (`None`: unbounded).
    pub body_timeout: Option<Duration>,
    /// Seals and opens the secrets stored in the database.
    pub sealer: crate::secrets::Sealer,
    /// The calendar providers configured, and their tokens.
    pub providers: Arc<crate::connect::provider_access::Providers>,
    /// Wakes the delegated-authorization worker.
    pub authorizations: crate::connect::worker::Handle,
    /// Wakes the provisioning follower (a directory attached to a unit).
    pub provisioning: crate::provisioning::Handle,
    /// Wakes the Google Workspace directory worker.
    pub google_sync: crate::google_sync::Handle,
}

/// The route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    health::routes(cfg);
    scim::routes(cfg);
    admin::routes(cfg);
    admin_connect::routes(cfg);
    oauth::routes(cfg);
    connect_api::routes(cfg);
    admin_setup_links::routes(cfg);
    setup_page::routes(cfg);
    openapi::routes(cfg);
    crate::dashboard::routes(cfg);
}

/// Wakes the sequencer when a write request ends, however it ends.
struct WakeOnDrop {
    wake: Arc<crate::background::Wakeup>,
    directory: Option<String>,
    armed: bool,
}

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match &self.directory {
            Some(id) => self.wake.directory(id),
            None => self.wake.any(),
        }
    }
}

/// The directory of a SCIM path (`/api/scim/v2.0/{directory_id}/…`): a SCIM write
/// records events of that directory only.
fn scim_directory(path: &str) -> Option<&str> {
    path.strip_prefix("/api/scim/v2.0/")?
        .split('/')
        .next()
        .filter(|id| crate::directory::is_resource_id(id))
}

/// A bound, not yet awaited server.
pub struct Running {
    pub addr: SocketAddr,
    pub external_url: String,
    pub server: Server,
    pub handle: ServerHandle,
    /// The delivery workers: shut them down after the server stopped.
    pub dispatcher: Dispatcher,
    /// The delegated-authorization worker: its claims are given back at shutdown.
    pub authorizations: crate::connect::worker::Handle,
}

/// Binds `config.listen`, starts the background tasks and builds the server over `db`.
/// Call it inside a tokio runtime. Awaiting `server` runs it
/// until SIGINT/SIGTERM (or `handle.stop`), letting in-flight requests finish.
pub fn bind(config: &Config, db: Db) -> Result<Running, Error> {
    let listener = TcpListener::bind(&config.listen)
        .map_err(|e| Error::Config(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("no local address: {e}")))?;
    let external_url = config
        .external_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_string();
    if !(0..=crate::directory::directories::MAX_GRACE_SECONDS)
        .contains(&config.secret_grace_seconds)
    {
        return Err(Error::Config(format!(
            "SCIMGATE_SECRET_GRACE_SECONDS must be from 0 to {}",
            crate::directory::directories::MAX_GRACE_SECONDS
        )));
    }
    let delivery = config.delivery_settings()?;
    let (sealer, poll) = (delivery.sealer.clone(), delivery.poll);
    {
        let mut conn = db.conn()?;
        crate::directory::webhooks::configure_global(
            &mut conn,
            &sealer,
            config.webhook_url.as_deref(),
            config.webhook_secret.as_deref(),
        )?;
        crate::directory::webhooks::adopt_directory_webhooks(&mut conn, &sealer)?;
    }
    let dispatcher = crate::webhooks::delivery::start(db.clone(), delivery)?;
    let wake = Arc::new(crate::background::Wakeup::default());
    let providers = Arc::new(crate::connect::provider_access::Providers::from_config(
        config,
        db.clone(),
        sealer.clone(),
    )?);
    let numbered = wake.clone();
    let provisioning = crate::provisioning::start(
        db.clone(),
        providers.clone(),
        config.provisioning_settings(),
        Arc::new(move |dir: &str| numbered.directory(dir)),
    );
    let synced = wake.clone();
    let google_sync = crate::google_sync::start(
        db.clone(),
        providers.google.clone(),
        config.google_sync_settings(&external_url),
        Arc::new(move |dir: &str| synced.directory(dir)),
    );
    tokio::spawn(crate::background::sequencer(
        db.clone(),
        poll,
        wake.clone(),
        dispatcher.clone(),
        provisioning.clone(),
    ));
    tokio::spawn(crate::background::listen(
        db.clone(),
        dispatcher.clone(),
        provisioning.clone(),
    ));
    tokio::spawn(crate::background::prune(
        db.clone(),
        chrono::Duration::hours(config.webhook_log_retention_hours.max(1)),
    ));
    let authorizations = crate::connect::worker::start(
        db.clone(),
        providers.clone(),
        sealer.clone(),
        config.authorization_settings(),
    )?;
    let state = web::Data::new(AppState {
        db,
        external_url: external_url.clone(),
        api_keys: Arc::new(config.api_keys.clone()),
        max_body_bytes: config.max_body_bytes,
        secret_grace_seconds: config.secret_grace_seconds,
        directories: DirectoryCache::new(std::time::Duration::from_millis(
            config.directory_cache_ms,
        )),
        webhook_allow_private: config.webhook_allow_private,
        dispatcher: dispatcher.clone(),
        body_timeout: (config.request_timeout_ms > 0)
            .then(|| Duration::from_millis(config.request_timeout_ms)),
        sealer,
        providers,
        authorizations: authorizations.clone(),
        provisioning,
        google_sync,
    });
    let header_timeout = Duration::from_millis(config.header_timeout_ms);
    let server = HttpServer::new(move || {
        let wake = wake.clone();
        App::new()
            .app_data(state.clone())
            .wrap_fn(move |req, srv| {
                // One line per request; never the Authorization header or the body.
                let (method, path) = (req.method().clone(), req.path().to_string());
                let started = Instant::now();
                let fut = match guard::refuse_nul(&req) {
                    Some(refusal) => Either::Left(std::future::ready(Ok(req.into_response(refusal)))),
                    None => Either::Right(srv.call(req)),
                };
                // A write may have committed events: number and deliver them now rather
                // than at the next poll — also when the client left before the answer or
                // the request failed after a commit (the guard fires when dropped).
                let mut wake = (method != actix_web::http::Method::GET && !path.ends_with("/.search"))
                    .then(|| WakeOnDrop {
                        wake: wake.clone(),
                        directory: scim_directory(&path).map(str::to_string),
                        armed: true,
                    });
                async move {
                    let res = fut.await?;
                    let status = res.status();
                    // A client error committed nothing (writes are all or nothing): no
                    // numbering pass for it, so unauthenticated requests cost no write.
                    if status.is_client_error() {
                        if let Some(w) = wake.as_mut() {
                            w.armed = false;
                        }
                    }
                    drop(wake);
                    // A setup link's path is its credential: never logged.
                    let path = setup_page::loggable(&path);
                    tracing::info!(%method, %path, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request");
                    Ok(res)
                }
            })
            // Browsers must not guess a type for our JSON (an error echoing input could
            // otherwise be sniffed as HTML).
            .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
            .configure(configure)
    })
    // A client that never finishes its headers (slowloris) is answered 408 and dropped;
    // bodies are bounded in `extract::json_body`. Zero disables, as in actix.
    .client_request_timeout(header_timeout)
    // After an answer to an unfinished request (a 408 to a body still trickling in), the
    // rest is read and discarded this long, then the connection is closed. Not below
    // 1 s: actix times this from a clock that ticks every 500 ms and misses shorter ones.
    .client_disconnect_timeout(Duration::from_secs(1))
    .shutdown_timeout(30)
    .listen(listener)
    .map_err(|e| Error::Config(format!("cannot serve on {addr}: {e}")))?
    .run();
    let handle = server.handle();
    Ok(Running {
        addr,
        external_url,
        server,
        handle,
        dispatcher,
        authorizations,
    })
}
