//! The operators' dashboard (DESIGN.md §8): server-rendered pages under `/dashboard`
//! for people holding an admin API key. Sign-in makes a session kept in the database
//! (`directory::sessions`); every form carries the session's CSRF token. Handlers read
//! and write through `directory`, `connect` and the webhook metrics on the blocking
//! pool, as the admin API does.

mod assets;
mod auth;
mod directories;
mod directory;
mod home;
mod units;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use maud::{html, Markup};

use crate::directory::sessions;
use crate::error::{Error, Rejected};
use crate::http::error::HtmlFailure;
use crate::http::pages::{self, Chrome};
use crate::http::AppState;

pub const COOKIE: &str = "scimgate_session";
pub const LOGIN: &str = "/dashboard/login";
/// Rows per table page.
pub const PAGE_ROWS: i64 = 50;

type Reply = Result<HttpResponse, HtmlFailure>;

/// Scripts and styles from this origin only; forms post here only.
const CSP: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; script-src 'self'; \
                   img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/favicon.ico", web::get().to(assets::favicon))
        .service(
            web::scope("/dashboard")
                .route("/assets/dashboard.css", web::get().to(assets::stylesheet))
                .route("/assets/favicon.svg", web::get().to(assets::favicon))
                .route("/assets/copy.js", web::get().to(assets::script))
                .route("/login", web::get().to(auth::login_page))
                .route("/login", web::post().to(auth::login))
                .route("/logout", web::post().to(auth::logout))
                .route("", web::get().to(home::home))
                .route("/", web::get().to(home::home))
                .configure(directories::routes)
                .configure(directory::routes)
                .configure(units::routes)
                .default_service(web::to(not_found)),
        );
}

async fn not_found(_: Session) -> Reply {
    Err(Rejected::not_found("There is no such page.").into())
}

/// A signed-in operator: the session's token (from the cookie), checked against the
/// database. Without one, pages answer 303 to the login page with `next`.
pub struct Session {
    token: String,
}

impl Session {
    pub fn csrf(&self) -> String {
        sessions::csrf_of(&self.token)
    }
}

fn state_of(req: &HttpRequest) -> Result<web::Data<AppState>, Error> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| Error::Internal("application state missing".into()))
}

/// The login page's address, coming back to `req`'s page (a GET) afterwards.
fn login_redirect(req: &HttpRequest) -> HttpResponse {
    let back = if req.method() == actix_web::http::Method::GET {
        match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        }
    } else {
        "/dashboard".to_string()
    };
    let next: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    see_other(&format!("{LOGIN}?next={next}"))
}

impl FromRequest for Session {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let state = state_of(&req).map_err(HtmlFailure::from)?;
            let refuse = || InternalError::from_response("no session", login_redirect(&req));
            let Some(token) = req
                .cookie(COOKIE)
                .map(|c| c.value().to_string())
                .filter(|t| !t.is_empty() && t.len() <= 128)
            else {
                return Err(refuse().into());
            };
            let check = token.clone();
            let live = state
                .db
                .run(move |c| sessions::is_live(c, &check))
                .await
                .map_err(HtmlFailure::from)?;
            if !live {
                return Err(refuse().into());
            }
            Ok(Session { token })
        })
    }
}

/// A form body's fields (the first of each name), at most 64 KiB.
pub async fn form_fields(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HashMap<String, String>, Error> {
    let body = crate::http::extract::bounded_body(payload, req, 64 * 1024).await?;
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    Ok(out)
}

/// A form of `session` with its CSRF token checked: 403 (nothing changes) without it.
pub async fn checked_form(
    session: &Session,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HashMap<String, String>, HtmlFailure> {
    let fields = form_fields(req, payload).await?;
    if !sessions::csrf_matches(&session.token, fields.get("csrf").map(String::as_str)) {
        return Err(Rejected::new(
            403,
            "This form has expired or did not come from this dashboard. Reload the page and try again.",
        )
        .into());
    }
    Ok(fields)
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A POST form with one button (and the CSRF field).
pub fn button_form(session: &Session, action: &str, label: &str, class: Option<&str>) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf_field(session))
            button type="submit" class=[class] { (label) }
        }
    }
}

/// A dashboard page: the layout with the dashboard's assets and navigation (with
/// "Log out" as a POST when signed in).
pub fn render(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: Markup,
) -> HttpResponse {
    let nav = html! {
        nav.top {
            strong { "scimgate" }
            @if let Some(s) = session {
                a href="/dashboard" { "Home" }
                a href="/dashboard/directories" { "Directories" }
                a href="/dashboard/units" { "Organizational units" }
                form.inline method="post" action="/dashboard/logout" {
                    (csrf_field(s))
                    button.secondary type="submit" { "Log out" }
                }
            }
        }
    };
    let chrome = Chrome {
        stylesheet: assets::STYLESHEET,
        favicon: assets::FAVICON,
        script: Some(assets::SCRIPT),
        nav,
    };
    pages::respond_with(status, pages::page(title, Some(&chrome), body), CSP)
}

pub fn ok(title: &str, session: &Session, body: Markup) -> Reply {
    Ok(render(StatusCode::OK, title, Some(session), body))
}

pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", to))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// A secret shown once, as text, with a "Copy" button.
pub fn copyable(id: &str, label: &str, value: &str) -> Markup {
    html! {
        p { (label) }
        div.secret {
            code id=(id) { (value) }
            button.secondary type="button" data-copy=(id) { "Copy" }
        }
    }
}

/// A count of users or groups: exact up to the cap the store counts to, then "100000+".
pub fn count(n: i64) -> String {
    crate::directory::overview::shown(n, crate::directory::overview::COUNT_CAP)
}

/// A group's member count: exact up to its cap, then "10000+".
pub fn members(n: i64) -> String {
    crate::directory::overview::shown(n, crate::directory::overview::MEMBER_COUNT_CAP)
}

/// A time as the dashboard shows it (UTC).
pub fn when(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A query parameter, trimmed, when not empty.
pub fn param<'q>(q: &'q HashMap<String, String>, name: &str) -> Option<&'q str> {
    q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// `path?name=value&…` with the values encoded (empty ones left out).
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    match s.finish() {
        q if q.is_empty() => path.to_string(),
        q => format!("{path}?{q}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{count, link, members};

    #[test]
    fn capped_counts_say_more_than() {
        assert_eq!(count(0), "0");
        assert_eq!(count(100_000), "100000");
        assert_eq!(count(100_001), "100000+");
        assert_eq!(members(10_000), "10000");
        assert_eq!(members(10_001), "10000+");
    }

    #[test]
    fn links_encode_their_values_and_leave_empty_ones_out() {
        assert_eq!(link("/p", &[]), "/p");
        assert_eq!(
            link("/p", &[("q", ""), ("after", "a&b c")]),
            "/p?after=a%26b+c"
        );
    }
}
