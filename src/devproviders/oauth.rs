//! What the conferencing fakes share: a sign-in page that stands in for the provider's
//! (one link per account, each signing in as that account's admin, and a decline link),
//! the codes it issues, and the authorization-code and refresh-token grants. Each fake
//! authenticates clients and renders errors in its provider's own shape.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse};

use super::state::{Conferencing, ConferencingToken, FakeState, IssuedCode};
use super::{arrive, escape, form, found, html, random_token, redirect_to, Shared};

/// How long a code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// What differs between the fakes' sign-in pages.
pub(super) struct Flavor {
    pub provider: Conferencing,
    /// The fault and counter prefix of the pages, e.g. `zoom/oauth`.
    pub prefix: &'static str,
    /// Where the pages live, e.g. `/zoom/oauth`: `{path}/_authorize`, `{path}/_decline`.
    pub path: &'static str,
    pub product: &'static str,
    /// The scope granted when the request names none.
    pub default_scope: &'static str,
    /// Whether the authorize request must name a scope (Webex).
    pub scope_required: bool,
}

impl Flavor {
    fn client_id<'a>(&self, shared: &'a Shared) -> &'a str {
        &shared.client(self.provider).0
    }
}

fn page_fault(status: u16) -> HttpResponse {
    html(
        status,
        format!("<!doctype html><title>Sign in</title><p>Something went wrong ({status}). Please try again later.</p>"),
    )
}

fn error_page(product: &str, message: &str) -> HttpResponse {
    html(
        400,
        format!(
            "<!doctype html><html><head><title>{product}</title></head><body>\
             <h1>{product}</h1><p id=\"error\">{}</p></body></html>",
            escape(message)
        ),
    )
}

fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    escape(&format!("{path}?{q}"))
}

/// `GET {path}/authorize?response_type=code&client_id&redirect_uri&state[&scope]`: the
/// provider's sign-in and consent screens as one page of plain links (no JavaScript).
pub(super) async fn authorize_page(
    flavor: &Flavor,
    req: &HttpRequest,
    shared: &Shared,
) -> HttpResponse {
    if let Some(fault) = arrive(shared, flavor.prefix, page_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let product = flavor.product;
    if get("client_id") != flavor.client_id(shared) {
        return error_page(product, &format!("Invalid client_id: {}", get("client_id")));
    }
    if get("response_type") != "code" {
        return error_page(
            product,
            &format!("Unsupported response_type: {}", get("response_type")),
        );
    }
    let redirect_uri = get("redirect_uri");
    if redirect_to(redirect_uri, &[]).is_none() {
        return error_page(product, "Invalid redirect_uri.");
    }
    if flavor.scope_required && get("scope").trim().is_empty() {
        return error_page(product, "The scope parameter is required.");
    }
    let scope = match get("scope").trim() {
        "" => flavor.default_scope,
        s => s,
    };
    let state = get("state");
    let mut items = String::new();
    {
        let mut inner = shared.state.lock();
        let realm = FakeState::realm(&mut inner, flavor.provider);
        for account in realm.accounts.keys() {
            let who = realm
                .admin(account)
                .map(|u| u.email.clone())
                .unwrap_or_else(|| "no users yet".into());
            items.push_str(&format!(
                "<li><a class=\"authorize\" data-account=\"{}\" href=\"{}\">Sign in as {} and allow (account {})</a></li>\n",
                escape(account),
                link(
                    &format!("{}/_authorize", flavor.path),
                    &[
                        ("account", account),
                        ("redirect_uri", redirect_uri),
                        ("state", state),
                        ("scope", scope),
                    ]
                ),
                escape(&who),
                escape(account),
            ));
        }
    }
    html(
        200,
        format!(
            "<!doctype html><html><head><title>Sign In - {product}</title></head><body>\
             <h1>{product}</h1>\
             <p>scimgate (development) would like to access your account: {}.</p>\
             <p>Sign in and allow:</p>\n<ul>\n{items}</ul>\n\
             <p><a class=\"decline\" href=\"{}\">Decline</a></p></body></html>",
            escape(scope),
            link(
                &format!("{}/_decline", flavor.path),
                &[("redirect_uri", redirect_uri), ("state", state)]
            ),
        ),
    )
}

/// The pairs of a redirect back: `state` only when the request had one.
fn with_state<'a>(mut pairs: Vec<(&'a str, &'a str)>, state: &'a str) -> Vec<(&'a str, &'a str)> {
    if !state.is_empty() {
        pairs.push(("state", state));
    }
    pairs
}

/// `{path}/_authorize?account&redirect_uri&state&scope`: the admin signed in and
/// allowed; a code goes back to `redirect_uri`.
pub(super) async fn authorize(flavor: &Flavor, req: &HttpRequest, shared: &Shared) -> HttpResponse {
    if let Some(fault) = arrive(shared, flavor.prefix, page_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let (account, redirect_uri) = (get("account"), get("redirect_uri"));
    if redirect_to(redirect_uri, &[]).is_none() {
        return error_page(flavor.product, "Invalid redirect_uri.");
    }
    let Ok(code) = random_token(24) else {
        return page_fault(500);
    };
    {
        let mut inner = shared.state.lock();
        if !FakeState::realm(&mut inner, flavor.provider)
            .accounts
            .contains_key(account)
        {
            return error_page(flavor.product, &format!("No account {account}."));
        }
        inner.codes.insert(
            code.clone(),
            IssuedCode {
                provider: flavor.provider,
                account: account.to_string(),
                redirect_uri: redirect_uri.to_string(),
                scope: match get("scope") {
                    "" => flavor.default_scope.to_string(),
                    s => s.to_string(),
                },
                expires: Instant::now() + CODE_LIFETIME,
            },
        );
    }
    match redirect_to(
        redirect_uri,
        &with_state(vec![("code", code.as_str())], get("state")),
    ) {
        Some(location) => found(&location),
        None => error_page(flavor.product, "Invalid redirect_uri."),
    }
}

/// `{path}/_decline?redirect_uri&state`: `?error=access_denied&state`.
pub(super) async fn decline(flavor: &Flavor, req: &HttpRequest, shared: &Shared) -> HttpResponse {
    if let Some(fault) = arrive(shared, flavor.prefix, page_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    match redirect_to(
        get("redirect_uri"),
        &with_state(vec![("error", "access_denied")], get("state")),
    ) {
        Some(location) => found(&location),
        None => error_page(flavor.product, "Invalid redirect_uri."),
    }
}

/// What a provider does with a refresh token it honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rotation {
    /// A new refresh token; the used one is spent (Zoom).
    SingleUse,
    /// The same refresh token again, still good (Webex).
    Same,
    /// No refresh token in the answer; the used one stays good.
    Omitted,
}

/// Why a grant failed, for the fake to word in its provider's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GrantError {
    UnsupportedGrantType,
    /// Unknown, used, expired, or another provider's code.
    InvalidCode,
    /// The code was issued for another `redirect_uri`.
    RedirectMismatch,
    /// Unknown or spent refresh token.
    InvalidRefreshToken,
    Internal,
}

/// What a grant issued.
pub(super) struct Granted {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scope: String,
}

/// The authorization-code or refresh-token grant of `params` (the client is already
/// authenticated); `token_prefix` makes the access tokens look like the provider's.
pub(super) fn grant(
    shared: &Shared,
    provider: Conferencing,
    params: &std::collections::HashMap<String, String>,
    rotation: Rotation,
    lifetime: Duration,
    token_prefix: &str,
) -> Result<Granted, GrantError> {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    let mut inner = shared.state.lock();
    let (account, scope, new_refresh) = match get("grant_type") {
        "authorization_code" => {
            // Single use: taken out whatever happens next.
            let code = inner
                .codes
                .remove(get("code"))
                .filter(|c| c.provider == provider && c.expires > Instant::now())
                .ok_or(GrantError::InvalidCode)?;
            if code.redirect_uri != get("redirect_uri") {
                return Err(GrantError::RedirectMismatch);
            }
            (code.account, code.scope, true)
        }
        "refresh_token" => {
            let presented = get("refresh_token");
            let known = inner
                .refresh_tokens
                .get(presented)
                .filter(|t| t.provider == provider && t.expires > Instant::now())
                .cloned()
                .ok_or(GrantError::InvalidRefreshToken)?;
            if rotation == Rotation::SingleUse {
                inner.refresh_tokens.remove(presented);
            }
            (known.account, known.scope, false)
        }
        _ => return Err(GrantError::UnsupportedGrantType),
    };
    let access_token = random_token(48)
        .map(|t| format!("{token_prefix}{t}"))
        .map_err(|_| GrantError::Internal)?;
    let refresh_token = if new_refresh || rotation == Rotation::SingleUse {
        let t = random_token(32)
            .map(|t| format!("{token_prefix}{t}"))
            .map_err(|_| GrantError::Internal)?;
        inner.refresh_tokens.insert(
            t.clone(),
            ConferencingToken {
                provider,
                account: account.clone(),
                scope: scope.clone(),
                // Refresh tokens outlive these tests.
                expires: Instant::now() + Duration::from_secs(90 * 86_400),
            },
        );
        Some(t)
    } else if rotation == Rotation::Same {
        Some(get("refresh_token").to_string())
    } else {
        None
    };
    inner.conferencing_tokens.insert(
        access_token.clone(),
        ConferencingToken {
            provider,
            account,
            scope: scope.clone(),
            expires: Instant::now() + lifetime,
        },
    );
    Ok(Granted {
        access_token,
        refresh_token,
        scope,
    })
}

/// The account and scope a request's bearer token was issued for, by `provider`, if
/// still good.
pub(super) fn caller(
    req: &HttpRequest,
    shared: &Shared,
    provider: Conferencing,
) -> Option<(String, String)> {
    let token = super::bearer(req)?;
    let inner = shared.state.lock();
    let t = inner.conferencing_tokens.get(&token)?;
    (t.provider == provider && t.expires > Instant::now())
        .then(|| (t.account.clone(), t.scope.clone()))
}

/// A token request's parameters: the form body, with the query's for names the body
/// lacks (Zoom's documentation puts them in the query).
pub(super) fn token_params(
    req: &HttpRequest,
    body: &[u8],
) -> std::collections::HashMap<String, String> {
    let mut params = form(req.query_string().as_bytes());
    params.extend(form(body));
    params
}
