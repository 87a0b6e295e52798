//! The crate's one [`Error`] rendered with one status in four shapes: a SCIM error on
//! SCIM routes, the `{data, error}` envelope on admin routes, an RFC 6749 §5.2 body on
//! OAuth endpoints, and an HTML page (never a redirect) on pages a person opens.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::error::Error;
use crate::scim::CONTENT_TYPE;

fn log(e: &Error) {
    if e.status() >= 500 {
        tracing::error!(error = %e, "request failed");
    }
}

fn status(e: &Error) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error on a SCIM route.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ScimFailure(#[from] pub Error);

impl From<crate::scim::ScimError> for ScimFailure {
    fn from(e: crate::scim::ScimError) -> Self {
        Self(e.into())
    }
}

impl ResponseError for ScimFailure {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        let mut r = HttpResponse::build(self.status_code());
        r.content_type(CONTENT_TYPE);
        if self.0.status() == 401 {
            r.insert_header(("WWW-Authenticate", "Bearer realm=\"scimgate\""));
        }
        r.body(self.0.to_scim().to_json().to_string())
    }
}

/// An error on an admin route.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct AdminFailure(#[from] pub Error);

impl From<crate::error::Rejected> for AdminFailure {
    fn from(e: crate::error::Rejected) -> Self {
        Self(e.into())
    }
}

impl ResponseError for AdminFailure {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        HttpResponse::build(self.status_code()).json(json!({
            "data": null,
            "error": {"message": self.0.public_message(), "code": self.0.status()},
        }))
    }
}

/// An error on an OAuth endpoint (RFC 6749 §5.2): `{"error", "error_description"}`, never
/// cached; a client that failed to authenticate is told how to (`WWW-Authenticate`).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct OAuthFailure(#[from] pub Error);

impl From<crate::oauth::OAuthError> for OAuthFailure {
    fn from(e: crate::oauth::OAuthError) -> Self {
        Self(e.into())
    }
}

impl ResponseError for OAuthFailure {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        let mut r = HttpResponse::build(self.status_code());
        r.insert_header(("Cache-Control", "no-store"))
            .insert_header(("Pragma", "no-cache"));
        if self.0.status() == 401 {
            r.insert_header(("WWW-Authenticate", "Basic realm=\"scimgate\""));
        }
        r.json(self.0.to_oauth().to_json())
    }
}

/// An error on a page a person opens (consent, setup links, the dashboard): a small HTML
/// page with the status and the public message, escaped. Never a redirect: an error
/// about a redirect URI must not follow it.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct HtmlFailure(#[from] pub Error);

impl From<crate::error::Rejected> for HtmlFailure {
    fn from(e: crate::error::Rejected) -> Self {
        Self(e.into())
    }
}

impl ResponseError for HtmlFailure {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }
    fn error_response(&self) -> HttpResponse {
        log(&self.0);
        let code = self.status_code();
        let title = code.canonical_reason().unwrap_or("Error");
        HttpResponse::build(code)
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                 <title>{status} {title}</title></head>\n<body><h1>{title}</h1>\n<p>{message}</p>\n</body></html>\n",
                status = code.as_u16(),
                title = escape_html(title),
                message = escape_html(&self.0.public_message()),
            ))
    }
}

/// Text made safe to place in HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Rejected;
    use crate::oauth::OAuthError;
    use actix_web::body::MessageBody;

    fn body(r: HttpResponse) -> String {
        let bytes = r.into_body().try_into_bytes().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn oauth_errors_are_rfc_6749_bodies() {
        let r = OAuthFailure::from(OAuthError::invalid_client("unknown client")).error_response();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
        assert!(r.headers().contains_key("www-authenticate"));
        let v: serde_json::Value = serde_json::from_str(&body(r)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": "invalid_client", "error_description": "unknown client"})
        );
        // Internals are never described to the client.
        let r = OAuthFailure(Error::Internal("secret detail".into())).error_response();
        assert_eq!(r.status(), 500);
        let text = body(r);
        assert!(
            text.contains("server_error") && !text.contains("secret detail"),
            "{text}"
        );
    }

    #[test]
    fn html_errors_escape_and_never_redirect() {
        let r = HtmlFailure(Rejected::invalid("<script>alert('x')</script> & \"q\"").into())
            .error_response();
        assert_eq!(r.status(), 400);
        assert!(!r.headers().contains_key("location"));
        let text = body(r);
        assert!(
            text.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"),
            "{text}"
        );
        assert!(!text.contains("<script>"), "{text}");
    }

    #[test]
    fn admin_errors_speak_plain_words() {
        let r = AdminFailure(Rejected::not_found("Directory not found.").into()).error_response();
        assert_eq!(r.status(), 404);
        let v: serde_json::Value = serde_json::from_str(&body(r)).unwrap();
        assert_eq!(v["error"]["message"], "Directory not found.");
        assert_eq!(v["error"]["code"], 404);
    }
}
