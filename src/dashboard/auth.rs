//! Signing in with an admin API key, and out.

use std::collections::HashMap;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;

use super::{checked_form, form_fields, render, see_other, Reply, Session, COOKIE, LOGIN};
use crate::directory::sessions;
use crate::error::Error;
use crate::http::AppState;

/// Where to go after signing in: a dashboard path of this site, else the home page (an
/// open redirect would hand the session's first page to another site).
fn local_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/dashboard"
                || n.starts_with("/dashboard/")
                || n.starts_with("/dashboard?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/dashboard".to_string(),
    }
}

fn form(status: StatusCode, next: &str, error: Option<&str>) -> HttpResponse {
    render(
        status,
        "Sign in",
        None,
        html! {
            @if let Some(e) = error {
                p.box.error role="alert" { (e) }
            }
            form method="post" action=(LOGIN) {
                input type="hidden" name="next" value=(next);
                label for="api_key" { "Admin API key" }
                input #api_key type="password" name="api_key" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.muted { "Any key of SCIMGATE_API_KEYS signs in, for 8 hours." }
        },
    )
}

pub async fn login_page(q: web::Query<HashMap<String, String>>) -> HttpResponse {
    form(
        StatusCode::OK,
        &local_next(q.get("next").map(String::as_str)),
        None,
    )
}

pub async fn login(state: web::Data<AppState>, req: HttpRequest, payload: web::Payload) -> Reply {
    let fields = form_fields(&req, payload).await?;
    let next = local_next(fields.get("next").map(String::as_str));
    let presented = fields.get("api_key").map(|k| k.trim()).unwrap_or("");
    // Every key is compared, as `AdminAuth` does, so timing tells nothing.
    let ok = state
        .api_keys
        .iter()
        .fold(false, |acc, k| acc | crate::secrets::equal(presented, k));
    if !ok || presented.is_empty() {
        return Ok(form(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That is not an admin API key of this gateway."),
        ));
    }
    let token = state.db.run(sessions::start).await?;
    let cookie = Cookie::build(COOKIE, token)
        .path("/dashboard")
        .http_only(true)
        .secure(state.external_url.starts_with("https://"))
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(
            sessions::LIFETIME.as_secs() as i64,
        ))
        .finish();
    let mut r = see_other(&next);
    r.add_cookie(&cookie)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(r)
}

pub async fn logout(
    session: Session,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Reply {
    checked_form(&session, &req, payload).await?;
    let token = session.token.clone();
    state.db.run(move |c| sessions::end(c, &token)).await?;
    let mut gone = Cookie::build(COOKIE, "").path("/dashboard").finish();
    gone.make_removal();
    let mut r = see_other(LOGIN);
    r.add_cookie(&gone)
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::local_next;

    #[test]
    fn next_stays_on_the_dashboard() {
        assert_eq!(
            local_next(Some("/dashboard/directories?q=a")),
            "/dashboard/directories?q=a"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/dashboard",
            "/dashboard//evil",
            "/\\evil",
            "/dashboardx",
            "/api/v1/directory-sync",
            "",
        ] {
            assert_eq!(local_next(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(local_next(None), "/dashboard");
    }
}
