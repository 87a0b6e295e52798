//! Google Workspace by domain-wide delegation: the operator's service account signs a
//! JWT naming the person to act as (`sub`), trades it for an access token at the key's
//! `token_uri` (RFC 7523), and reads the Admin SDK Directory as a workspace admin.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::Value;

use super::{
    bearer, code_and_description, exchange, exchange_up_to, form, join, AccessToken, Answer,
    ProviderError,
};
use crate::error::Error;
use crate::outbound;
use crate::secrets::Secret;

pub const USER_READONLY_SCOPE: &str =
    "https://www.googleapis.com/auth/admin.directory.user.readonly";
pub const GROUP_READONLY_SCOPE: &str =
    "https://www.googleapis.com/auth/admin.directory.group.readonly";
pub const MEMBER_READONLY_SCOPE: &str =
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly";
/// What a Google Workspace directory reads: users, groups and their members.
pub const DIRECTORY_SCOPES: [&str; 3] = [
    USER_READONLY_SCOPE,
    GROUP_READONLY_SCOPE,
    MEMBER_READONLY_SCOPE,
];

/// Most of one listing page we read: 500 users in Google's full shape, with room for
/// custom schemas.
const MAX_PAGE_BYTES: usize = 16 << 20;

/// One of the Admin SDK Directory's listings.
#[derive(Debug, Clone, Copy)]
pub enum Listing<'a> {
    /// `users.list` of the admin's own account (`customer=my_customer`).
    Users,
    /// `groups.list` of that account.
    Groups,
    /// `members.list` of a group, by its id or email.
    Members(&'a str),
}

impl Listing<'_> {
    /// The array its pages carry, and the most items Google gives per page.
    fn key_and_size(&self) -> (&'static str, &'static str) {
        match self {
            Self::Users => ("users", "500"),
            Self::Groups => ("groups", "200"),
            Self::Members(_) => ("members", "200"),
        }
    }

    /// Google's partial response (`fields`): only what a directory maps, so a page of
    /// users is a fraction of its full size to send and parse.
    fn fields(&self) -> &'static str {
        match self {
            Self::Users => "nextPageToken,users(id,primaryEmail,name,emails,aliases,suspended)",
            Self::Groups => "nextPageToken,groups(id,email,name)",
            Self::Members(_) => "nextPageToken,members(id,email,type,role,status)",
        }
    }
}

/// A page of a listing: its items as Google sent them, and the token of the next.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub next_page_token: Option<String>,
}

/// Where tokens come from when a key does not say (every key Google issues does).
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google refuses assertions that live longer than an hour.
const ASSERTION_SECONDS: i64 = 3600;

/// A service account's JSON key, as Google issues it. `Debug` leaves the private key out.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub client_id: String,
    pub token_uri: String,
    /// The PEM, kept for whoever must store the key again.
    private_key: Secret,
    /// The same key parsed once, so a bad key fails at load and signing does not re-parse.
    signer: SigningKey<Sha256>,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("client_id", &self.client_id)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Reads a key's JSON. Errors name the field at fault, never a value.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let bad = |what: String| Error::Config(format!("Google service account key: {what}"));
        // Through a Value: serde's typed errors can quote the offending value.
        let json: Value = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let field = |name: &str| -> Result<String, Error> {
            json.get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| bad(format!("`{name}` is missing or not a string")))
        };
        if let Some(kind) = json.get("type").and_then(Value::as_str) {
            if kind != "service_account" {
                return Err(bad(format!("`type` is {kind:?}, not \"service_account\"")));
            }
        }
        let private_key = Secret::new(field("private_key")?);
        let rsa = rsa::PrivateKey::from_pkcs8_pem(private_key.expose())
            .map_err(|_| bad("`private_key` is not an RSA key in PKCS#8 PEM".into()))?;
        Ok(Self {
            client_email: field("client_email")?,
            client_id: field("client_id")?,
            token_uri: match json.get("token_uri") {
                None => DEFAULT_TOKEN_URI.to_string(),
                Some(_) => field("token_uri")?,
            },
            private_key,
            signer: SigningKey::<Sha256>::new(rsa),
        })
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read the Google service account key {}: {e}",
                path.display()
            ))
        })?;
        Self::from_json(&text)
    }

    /// The private key's PEM.
    pub fn private_key(&self) -> &Secret {
        &self.private_key
    }
}

/// RS256 JWT: iss=client_email, sub=subject, scope=space-joined, aud=token_uri, iat=now, exp=now+3600.
pub fn assertion(
    key: &ServiceAccountKey,
    subject: &str,
    scopes: &[&str],
    now: i64,
) -> Result<String, Error> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": key.client_email,
        "sub": subject,
        "scope": scopes.join(" "),
        "aud": key.token_uri,
        "iat": now,
        "exp": now + ASSERTION_SECONDS,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = key
        .signer
        .try_sign(signing_input.as_bytes())
        .map_err(|e| Error::Internal(format!("signing a Google assertion: {e}")))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

/// A user as the Admin SDK Directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleUser {
    pub id: String,
    pub primary_email: String,
    pub is_admin: bool,
    pub suspended: bool,
    pub full_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl GoogleUser {
    fn from_json(json: &Value) -> Option<Self> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let name = json.get("name");
        Some(Self {
            id: text(json.get("id"))?,
            primary_email: text(json.get("primaryEmail"))?,
            is_admin: json
                .get("isAdmin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            suspended: json
                .get("suspended")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            full_name: text(name.and_then(|n| n.get("fullName"))),
            given_name: text(name.and_then(|n| n.get("givenName"))),
            family_name: text(name.and_then(|n| n.get("familyName"))),
        })
    }
}

/// The Google connector: one service account, one Admin SDK base URL.
#[derive(Debug, Clone)]
pub struct Google {
    client: outbound::Client,
    key: Arc<ServiceAccountKey>,
    admin_url: String,
}

impl Google {
    pub fn new(client: outbound::Client, key: Arc<ServiceAccountKey>, admin_url: &str) -> Self {
        Self {
            client,
            key,
            admin_url: admin_url.trim_end_matches('/').to_string(),
        }
    }

    /// The service account's numeric client id, which the workspace admin authorizes for
    /// domain-wide delegation (shown on the consent page).
    pub fn client_id(&self) -> &str {
        &self.key.client_id
    }

    /// jwt-bearer grant (form: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…) at key.token_uri, impersonating `subject`.
    pub async fn token(
        &self,
        subject: &str,
        scopes: &[&str],
    ) -> Result<AccessToken, ProviderError> {
        const WHAT: &str = "Google token endpoint";
        let jwt = assertion(&self.key, subject, scopes, chrono::Utc::now().timestamp())
            .map_err(|e| ProviderError::Refused(e.to_string()))?;
        let request = self
            .client
            .post(&self.key.token_uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(form(&[("grant_type", JWT_BEARER), ("assertion", &jwt)]));
        let answer = exchange(WHAT, request).await?;
        let json = answer.json();
        if answer.status == 200 {
            let json = json.as_ref();
            let token = json
                .and_then(|j| j.get("access_token"))
                .and_then(Value::as_str);
            let expires_in = json
                .and_then(|j| j.get("expires_in"))
                .and_then(Value::as_i64)
                .unwrap_or(3600);
            return match token {
                Some(t) if !t.is_empty() => Ok(AccessToken::new(t.to_string(), expires_in)),
                _ => Err(ProviderError::Refused(format!(
                    "{WHAT}: 200 without an access_token"
                ))),
            };
        }
        // RFC 6749 §5.2: {"error", "error_description"}.
        let text = |name: &str| {
            json.as_ref()
                .and_then(|j| j.get(name))
                .and_then(Value::as_str)
        };
        let message = format!(
            "{WHAT}: {} {}",
            answer.status,
            code_and_description(text("error"), text("error_description"))
        );
        if answer.is_transient() {
            Err(answer.unavailable(message))
        } else {
            Err(ProviderError::Refused(message))
        }
    }

    /// GET {admin_url}/admin/directory/v1/users/{urlencoded email}; Ok(None) on 404.
    pub async fn user(
        &self,
        token: &str,
        email: &str,
    ) -> Result<Option<GoogleUser>, ProviderError> {
        const WHAT: &str = "Google Admin SDK";
        if !email.contains('@') {
            return Err(ProviderError::Refused(format!(
                "{WHAT}: {email:?} is not an email address"
            )));
        }
        let url = join(
            &self.admin_url,
            &["admin", "directory", "v1", "users", email],
        )?;
        let request = self
            .client
            .get(url)
            .header("authorization", bearer(token))
            .header("accept", "application/json");
        let answer = exchange(WHAT, request).await?;
        let json = answer.json();
        if answer.status == 200 {
            return json
                .as_ref()
                .and_then(GoogleUser::from_json)
                .map(Some)
                .ok_or_else(|| {
                    ProviderError::Refused(format!("{WHAT}: a user without id or primaryEmail"))
                });
        }
        if answer.status == 404 {
            return Ok(None);
        }
        Err(admin_error(WHAT, &answer, json.as_ref()))
    }

    /// One page of `listing` (`pageToken` from the previous page, none for the first).
    pub async fn list(
        &self,
        token: &str,
        listing: Listing<'_>,
        page_token: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        const WHAT: &str = "Google Admin SDK";
        let base = ["admin", "directory", "v1"];
        let mut url = match listing {
            Listing::Users => join(&self.admin_url, &[&base[..], &["users"]].concat())?,
            Listing::Groups => join(&self.admin_url, &[&base[..], &["groups"]].concat())?,
            Listing::Members(group) => join(
                &self.admin_url,
                &[&base[..], &["groups", group, "members"]].concat(),
            )?,
        };
        let (key, size) = listing.key_and_size();
        {
            let mut query = url.query_pairs_mut();
            if !matches!(listing, Listing::Members(_)) {
                query.append_pair("customer", "my_customer");
            }
            query.append_pair("maxResults", size);
            query.append_pair("fields", listing.fields());
            if let Some(t) = page_token {
                query.append_pair("pageToken", t);
            }
        }
        let request = self
            .client
            .get(url)
            .header("authorization", bearer(token))
            .header("accept", "application/json");
        let answer = exchange_up_to(WHAT, request, MAX_PAGE_BYTES).await?;
        let json = answer.json();
        if answer.status != 200 {
            return Err(admin_error(WHAT, &answer, json.as_ref()));
        }
        let mut json = json.ok_or_else(|| {
            ProviderError::Refused(format!("{WHAT}: a {key} page that is not JSON"))
        })?;
        // Google leaves the array out of an empty page.
        let items = match json.get_mut(key).map(Value::take) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(ProviderError::Refused(format!(
                    "{WHAT}: `{key}` is not an array"
                )))
            }
        };
        let next_page_token = json
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(ListPage {
            items,
            next_page_token,
        })
    }
}

/// An Admin SDK error answer (`{"error": {"code", "message", "errors": [{"reason", …}],
/// "status"}}`) as its kind: 401 to refresh, 429/5xx and quota reasons to retry, the
/// rest refused.
fn admin_error(what: &str, answer: &Answer, json: Option<&Value>) -> ProviderError {
    let error = json.and_then(|j| j.get("error"));
    let reason = error
        .and_then(|e| e.get("errors"))
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("reason"))
        .and_then(Value::as_str);
    let status_text = error.and_then(|e| e.get("status")).and_then(Value::as_str);
    let message = format!(
        "{what}: {} {}",
        answer.status,
        code_and_description(
            reason.or(status_text),
            error.and_then(|e| e.get("message")).and_then(Value::as_str)
        )
    );
    // Google reports some quota overruns as 403 (usageLimits): those pass with time.
    let rate_limited = matches!(
        reason,
        Some("rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")
    );
    match answer.status {
        401 => ProviderError::Unauthorized(message),
        _ if answer.is_transient() || rate_limited => answer.unavailable(message),
        _ => ProviderError::Refused(message),
    }
}
