//! The fake Google: the OAuth token endpoint's JWT-bearer grant (RFC 7523) for the one
//! service account it issued, and the Admin SDK Directory's `users.get`, `users.list`,
//! `groups.list` and `members.list` (paged with `pageToken`). Texts are Google's own.

use std::collections::BTreeSet;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde_json::{json, Value};

use super::state::{GoogleGroup, GoogleToken, GoogleUser, Inner};
use super::{arrive, bearer, form, json, random_token, token_lifetime, Shared, TOKEN_SECONDS};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Scopes that let an admin read users.
const USER_READ_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.user",
];
/// Scopes that let an admin list groups.
const GROUP_READ_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group",
];
/// Scopes that let an admin list a group's members.
const MEMBER_READ_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group",
];

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/google/token", web::post().to(token))
        .route("/google/admin/directory/v1/users", web::get().to(users))
        .route(
            "/google/admin/directory/v1/users/{user_key}",
            web::get().to(user),
        )
        .route("/google/admin/directory/v1/groups", web::get().to(groups))
        .route(
            "/google/admin/directory/v1/groups/{group_key}/members",
            web::get().to(members),
        );
}

// --- the token endpoint ---

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    json(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn token_fault(status: u16) -> HttpResponse {
    match status {
        429 => oauth_error(429, "rate_limit_exceeded", "Rate Limit Exceeded"),
        s if s >= 500 => oauth_error(s, "internal_failure", "Backend Error"),
        s => oauth_error(s, "invalid_request", "Injected fault"),
    }
}

const BAD_SIGNATURE: &str = "Invalid JWT Signature.";
const BAD_TIMES: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// The claims of a validly signed assertion, or the `invalid_grant` description.
fn verify(shared: &Shared, assertion: &str, now: i64) -> Result<Value, String> {
    let parts = assertion
        .rsplit_once('.')
        .and_then(|(signed, signature)| Some((signed, signed.split_once('.')?, signature)));
    let Some((signed, (header, claims), signature)) =
        parts.filter(|(_, (_, c), _)| !c.contains('.'))
    else {
        return Err("Invalid JWT: the assertion is not a JWS in compact form.".into());
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let header: Value = decode(header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(BAD_SIGNATURE)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(BAD_SIGNATURE.into());
    }
    let signature = decode(signature)
        .and_then(|b| Signature::try_from(b.as_slice()).ok())
        .ok_or(BAD_SIGNATURE)?;
    VerifyingKey::<Sha256>::new(shared.key.public.clone())
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| BAD_SIGNATURE.to_string())?;
    let claims: Value = decode(claims)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(BAD_SIGNATURE)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(shared.key.client_email.as_str()) {
        return Err("Invalid grant: account not found".into());
    }
    let audience = shared.google_token_uri();
    if text("aud") != Some(audience.as_str()) {
        return Err(format!(
            "Invalid JWT: Failed audience check. The right audience is {audience}"
        ));
    }
    let (Some(iat), Some(exp)) = (
        claims.get("iat").and_then(Value::as_i64),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Err(BAD_TIMES.into());
    };
    // Google allows a little clock skew on iat.
    if exp <= now || exp - iat > 3600 || iat > now + 300 || exp < iat {
        return Err(BAD_TIMES.into());
    }
    Ok(claims)
}

async fn token(shared: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "google/token", token_fault).await {
        return fault;
    }
    let form = form(&body);
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant_type != JWT_BEARER {
        return oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {grant_type}"),
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let claims = match verify(&shared, assertion, chrono::Utc::now().timestamp()) {
        Ok(c) => c,
        Err(description) => return oauth_error(400, "invalid_grant", &description),
    };
    let Some(subject) = claims
        .get("sub")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
    else {
        // A service account acting as itself: no workspace data for it here.
        return oauth_error(400, "invalid_grant", "Invalid email or User ID");
    };
    let scopes: BTreeSet<String> = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return oauth_error(400, "invalid_scope", "Empty or missing scope not allowed.");
    }
    let mut inner = shared.state.lock();
    if !inner.google_users.contains_key(&subject) {
        return oauth_error(400, "invalid_grant", "Invalid email or User ID");
    }
    let domain = subject.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let delegated = inner
        .delegations
        .get(domain)
        .is_some_and(|granted| scopes.is_subset(granted));
    if !delegated {
        return oauth_error(
            401,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        );
    }
    let token = match random_token(48) {
        Ok(t) => format!("ya29.{t}"),
        Err(_) => return token_fault(500),
    };
    inner.google_tokens.insert(
        token.clone(),
        GoogleToken {
            subject,
            scopes,
            expires: Instant::now() + token_lifetime(),
        },
    );
    json(
        200,
        json!({"access_token": token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}),
    )
}

// --- the Admin SDK ---

/// Google's API error: `{"error": {"code", "message", "errors": [{"message", "domain",
/// "reason", …extra}], "status"?}}`.
fn api_error(
    status: u16,
    message: &str,
    reason: &str,
    extra: Value,
    rpc_status: Option<&str>,
) -> HttpResponse {
    let mut error = json!({"message": message, "domain": "global", "reason": reason});
    if let (Some(e), Some(x)) = (error.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    let mut body = json!({"code": status, "message": message, "errors": [error]});
    if let (Some(b), Some(rpc)) = (body.as_object_mut(), rpc_status) {
        b.insert("status".into(), json!(rpc));
    }
    json(status, json!({ "error": body }))
}

fn unauthenticated() -> HttpResponse {
    api_error(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        json!({"location": "Authorization", "locationType": "header"}),
        Some("UNAUTHENTICATED"),
    )
}

fn forbidden() -> HttpResponse {
    api_error(
        403,
        "Not Authorized to access this resource/api",
        "forbidden",
        json!({}),
        None,
    )
}

fn not_found() -> HttpResponse {
    api_error(
        404,
        "Resource Not Found: userKey",
        "notFound",
        json!({}),
        None,
    )
}

fn admin_fault(status: u16) -> HttpResponse {
    match status {
        429 => api_error(
            429,
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'admin.googleapis.com'.",
            "rateLimitExceeded",
            json!({}),
            Some("RESOURCE_EXHAUSTED"),
        ),
        503 => json(
            503,
            json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}),
        ),
        401 => unauthenticated(),
        403 => forbidden(),
        404 => not_found(),
        s => api_error(s, "Backend Error", "backendError", json!({}), None),
    }
}

/// Google's answer to a request it refuses (boxed: a response is large).
type Refusal = Box<HttpResponse>;

/// The admin a request acts as, if its token is live, has one of `scopes` and belongs to
/// a workspace admin; else Google's answer.
fn caller(req: &HttpRequest, inner: &Inner, scopes: &[&str]) -> Result<GoogleUser, Refusal> {
    let Some(token) = bearer(req).and_then(|t| inner.google_tokens.get(&t).cloned()) else {
        return Err(Box::new(unauthenticated()));
    };
    if token.expires <= Instant::now() {
        return Err(Box::new(unauthenticated()));
    }
    if !scopes.iter().any(|s| token.scopes.contains(*s)) {
        return Err(Box::new(api_error(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            json!({}),
            Some("PERMISSION_DENIED"),
        )));
    }
    // The token acts as `sub`: only a workspace admin reads the directory.
    match inner.google_users.get(&token.subject) {
        Some(caller) if caller.is_admin => Ok(caller.clone()),
        _ => Err(Box::new(forbidden())),
    }
}

fn domain(email: &str) -> Option<String> {
    email.rsplit_once('@').map(|(_, d)| d.to_string())
}

/// An opaque etag that changes with `seed` (a fast hash: listings make thousands).
fn etag(seed: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    format!("\"{:016x}{}\"", h.finish(), seed.len())
}

/// A user in Google's shape; with `wanted` (a partial response), only those fields, built
/// alone (a listing of a hundred thousand users asks for a few).
fn user_json(u: &GoogleUser, wanted: Option<&[String]>) -> Value {
    let want = |k: &str| wanted.is_none_or(|w| w.iter().any(|x| x == k));
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: &dyn Fn() -> Value| {
        if want(k) {
            m.insert(k.to_string(), v());
        }
    };
    put("kind", &|| json!("admin#directory#user"));
    put("id", &|| json!(u.id));
    put("etag", &|| {
        json!(etag(&format!("{}{}{}", u.id, u.is_admin, u.revision)))
    });
    put("primaryEmail", &|| json!(u.email));
    put("name", &|| {
        json!({
            "givenName": u.given_name,
            "familyName": u.family_name,
            "fullName": format!("{} {}", u.given_name, u.family_name),
        })
    });
    put("isAdmin", &|| json!(u.is_admin));
    put("isDelegatedAdmin", &|| json!(false));
    put("lastLoginTime", &|| {
        json!(match u.last_login {
            Some(n) => format!("2026-01-01T00:{:02}:{:02}.000Z", (n / 60) % 60, n % 60),
            None => "1970-01-01T00:00:00.000Z".to_string(),
        })
    });
    put("creationTime", &|| json!("2024-01-15T09:30:00.000Z"));
    put("agreedToTerms", &|| json!(true));
    put("suspended", &|| json!(u.suspended));
    if u.suspended {
        put("suspensionReason", &|| json!("ADMIN"));
    }
    put("archived", &|| json!(false));
    put("changePasswordAtNextLogin", &|| json!(false));
    put("ipWhitelisted", &|| json!(false));
    put("emails", &|| {
        let mut emails = vec![json!({"address": u.email, "primary": true})];
        emails.extend(u.aliases.iter().map(|a| json!({"address": a})));
        Value::Array(emails)
    });
    if !u.aliases.is_empty() {
        put("aliases", &|| json!(u.aliases));
    }
    put("customerId", &|| {
        let customer = domain(&u.email).unwrap_or_default();
        json!(format!("C0{}", &etag(&customer)[1..8]))
    });
    put("orgUnitPath", &|| json!("/"));
    put("isMailboxSetup", &|| json!(true));
    put("isEnrolledIn2Sv", &|| json!(false));
    put("isEnforcedIn2Sv", &|| json!(false));
    put("includeInGlobalAddressList", &|| json!(true));
    Value::Object(m)
}

fn group_json(g: &GoogleGroup) -> Value {
    json!({
        "kind": "admin#directory#group",
        "id": g.id,
        "etag": etag(&format!("{}{}", g.id, g.revision)),
        "email": g.email,
        "name": g.name,
        // Google sends this count as a string.
        "directMembersCount": g.members.len().to_string(),
        "description": "",
        "adminCreated": true,
    })
}

/// `maxResults` (within Google's bounds, `default` when absent) and the offset a
/// `pageToken` stands for; Google's 400 when either is malformed.
fn paging(
    query: &std::collections::HashMap<String, String>,
    max: usize,
    default: usize,
) -> Result<(usize, usize), Refusal> {
    let invalid = |what: &str| {
        Box::new(api_error(
            400,
            &format!("Invalid Input: {what}"),
            "invalid",
            json!({}),
            Some("INVALID_ARGUMENT"),
        ))
    };
    let size = match query.get("maxResults") {
        None => default,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| invalid("maxResults"))?,
    };
    let offset = match query.get("pageToken") {
        None => 0,
        Some(t) => URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| invalid("pageToken"))?,
    };
    Ok((size, offset))
}

/// The item fields a partial response (`fields=nextPageToken,users(id,name(givenName))`)
/// asks for under `key`: their top-level names; `None` when it does not narrow them.
fn wanted_fields(fields: Option<&String>, key: &str) -> Option<Vec<String>> {
    let fields = fields?;
    let start = fields.find(&format!("{key}("))? + key.len() + 1;
    let (mut depth, mut names, mut current) = (0, Vec::new(), String::new());
    for c in fields[start..].chars() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => break,
            ')' => depth -= 1,
            ',' if depth == 0 => names.push(std::mem::take(&mut current)),
            c if depth == 0 => current.push(c),
            _ => {}
        }
    }
    names.push(current);
    Some(names.into_iter().map(|n| n.trim().to_string()).collect())
}

/// A listing page: `kind`, `etag`, the items under `key` (narrowed to the `fields` asked
/// for, as Google's partial responses are), and `nextPageToken` when more follow.
fn page(
    kind: &str,
    key: &str,
    mut items: Vec<Value>,
    next: Option<usize>,
    fields: Option<&String>,
) -> HttpResponse {
    if let Some(wanted) = wanted_fields(fields, key) {
        for item in &mut items {
            if let Some(obj) = item.as_object_mut() {
                obj.retain(|k, _| wanted.iter().any(|w| w == k));
            }
        }
    }
    let mut body = json!({"kind": kind, "etag": etag(&format!("{kind}{}", items.len()))});
    // Google leaves an empty page's array out.
    if !items.is_empty() {
        body[key] = Value::Array(items);
    }
    if let Some(offset) = next {
        body["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(format!("offset:{offset}")));
    }
    json(200, body)
}

/// The account a listing covers: `customer=my_customer` (the caller's) or its `domain`.
fn account_of(
    query: &std::collections::HashMap<String, String>,
    caller: &GoogleUser,
) -> Result<String, Refusal> {
    let own = domain(&caller.email).unwrap_or_default();
    match (
        query.get("customer").map(String::as_str),
        query.get("domain"),
    ) {
        (Some("my_customer"), _) => Ok(own),
        (_, Some(d)) if d.eq_ignore_ascii_case(&own) => Ok(own),
        (None, None) => Err(Box::new(api_error(
            400,
            "Bad Request",
            "badRequest",
            json!({}),
            Some("INVALID_ARGUMENT"),
        ))),
        _ => Err(Box::new(forbidden())),
    }
}

async fn users(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "google/admin", admin_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let inner = shared.state.lock();
    let listed = caller(&req, &inner, USER_READ_SCOPES)
        .and_then(|c| account_of(&query, &c))
        .and_then(|account| paging(&query, 500, 100).map(|p| (account, p)));
    let (account, (size, offset)) = match listed {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let mut matching = inner
        .google_users
        .values()
        .filter(|u| domain(&u.email).as_deref() == Some(account.as_str()))
        .skip(offset);
    let wanted = wanted_fields(query.get("fields"), "users");
    let items: Vec<Value> = matching
        .by_ref()
        .take(size)
        .map(|u| user_json(u, wanted.as_deref()))
        .collect();
    let more = matching.next().is_some();
    let next = more.then_some(offset + items.len());
    page(
        "admin#directory#users",
        "users",
        items,
        next,
        query.get("fields"),
    )
}

async fn groups(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "google/admin", admin_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let inner = shared.state.lock();
    let listed = caller(&req, &inner, GROUP_READ_SCOPES)
        .and_then(|c| account_of(&query, &c))
        .and_then(|account| paging(&query, 200, 200).map(|p| (account, p)));
    let (account, (size, offset)) = match listed {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let mut matching = inner
        .google_groups
        .values()
        .filter(|g| domain(&g.email).as_deref() == Some(account.as_str()))
        .skip(offset);
    let items: Vec<Value> = matching.by_ref().take(size).map(group_json).collect();
    let more = matching.next().is_some();
    let next = more.then_some(offset + items.len());
    page(
        "admin#directory#groups",
        "groups",
        items,
        next,
        query.get("fields"),
    )
}

async fn members(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "google/admin", admin_fault).await {
        return fault;
    }
    let query = form(req.query_string().as_bytes());
    let inner = shared.state.lock();
    let (caller, (size, offset)) = match caller(&req, &inner, MEMBER_READ_SCOPES)
        .and_then(|c| paging(&query, 200, 200).map(|p| (c, p)))
    {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let key = path.into_inner().to_ascii_lowercase();
    let group = inner
        .google_groups
        .get(&key)
        .or_else(|| inner.google_groups.values().find(|g| g.id == key))
        .filter(|g| domain(&g.email) == domain(&caller.email));
    let Some(group) = group else {
        return api_error(
            404,
            "Resource Not Found: groupKey",
            "notFound",
            json!({}),
            None,
        );
    };
    let mut listed = group.members.values().skip(offset);
    let items: Vec<Value> = listed
        .by_ref()
        .take(size)
        .map(|m| {
            json!({
                "kind": "admin#directory#member",
                "etag": etag(&format!("{}{}", group.id, m.id)),
                "id": m.id,
                "email": m.email,
                "role": m.role,
                "type": m.kind,
                "status": "ACTIVE",
            })
        })
        .collect();
    let more = listed.next().is_some();
    let next = more.then_some(offset + items.len());
    page(
        "admin#directory#members",
        "members",
        items,
        next,
        query.get("fields"),
    )
}

async fn user(
    req: HttpRequest,
    shared: web::Data<Shared>,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(fault) = arrive(&shared, "google/admin", admin_fault).await {
        return fault;
    }
    let inner = shared.state.lock();
    let caller = match caller(&req, &inner, USER_READ_SCOPES) {
        Ok(c) => c,
        Err(answer) => return *answer,
    };
    let key = path.into_inner().to_ascii_lowercase();
    let found = inner
        .google_users
        .get(&key)
        .or_else(|| inner.google_users.values().find(|u| u.id == key));
    let Some(found) = found.filter(|u| domain(&u.email) == domain(&caller.email)) else {
        return not_found();
    };
    json(200, user_json(found, None))
}
