//! Server-rendered pages a person opens (consent today, the dashboard next): one layout,
//! one small embedded stylesheet, no JavaScript. maud escapes every value.

use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1d2430;line-height:1.5}\
h1{font-size:1.4rem}code{background:#f1f3f6;padding:.1rem .3rem;border-radius:3px}\
.box{border:1px solid #d5dae1;border-radius:6px;padding:1rem;margin:1rem 0}\
label{display:block;margin:.6rem 0 .2rem}input[type=text],input[type=email]{width:100%;padding:.4rem;box-sizing:border-box}\
button,.button{display:inline-block;margin:.8rem .4rem 0 0;padding:.45rem .9rem;border:1px solid #2457c5;border-radius:4px;background:#2457c5;color:#fff;text-decoration:none;font-size:1rem;cursor:pointer}\
button.secondary{background:#fff;color:#2457c5}.error{color:#a4161a;border-color:#a4161a}ul.providers li{margin:.4rem 0}";

/// A whole page around `body`.
pub fn layout(title: &str, body: Markup) -> Markup {
    page(title, None, body)
}

/// What a family of pages adds to the layout (the dashboard: its stylesheet, favicon,
/// script and navigation), all same-origin.
pub struct Chrome<'a> {
    pub stylesheet: &'a str,
    pub favicon: &'a str,
    pub script: Option<&'a str>,
    pub nav: Markup,
}

/// A whole page around `body`, with `chrome` when given.
pub fn page(title: &str, chrome: Option<&Chrome>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · scimgate" }
                style { (maud::PreEscaped(STYLE)) }
                @if let Some(c) = chrome {
                    link rel="stylesheet" href=(c.stylesheet);
                    link rel="icon" href=(c.favicon) type="image/svg+xml";
                    @if let Some(src) = c.script {
                        script src=(src) defer {}
                    }
                }
            }
            body {
                @if let Some(c) = chrome { (c.nav) }
                h1 { (title) }
                (body)
            }
        }
    }
}

/// A page response: never cached, never framed (a consent page in a frame could be
/// clicked through by another site).
pub fn respond(status: actix_web::http::StatusCode, page: Markup) -> HttpResponse {
    respond_with(
        status,
        page,
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    )
}

/// [`respond`] under another Content-Security-Policy (pages with same-origin assets).
pub fn respond_with(status: actix_web::http::StatusCode, page: Markup, csp: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Content-Security-Policy", csp.to_string()))
        .body(page.into_string())
}
