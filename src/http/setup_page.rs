//! The page a customer setup link opens (DESIGN.md §8), with no login: the link's secret
//! in the path is the credential, and everything shown or changed is what
//! `directory::setup_links` finds within the link's scope. Forms are POSTs carrying the
//! link's CSRF token; GET changes nothing. Secrets appear only on the answer to a
//! rotation.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, Markup};
use serde_json::Value;

use super::error::HtmlFailure;
use super::extract::bounded_body;
use super::pages::{layout, respond};
use super::AppState;
use crate::directory::setup_links::{self, DirectoryView, Scope, SetupLinkRow, SetupView};
use crate::directory::{directories, scim_base_url};
use crate::error::{Error, Rejected};
use crate::scim::resource::timestamp;

type Page = Result<HttpResponse, HtmlFailure>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/setup/{secret}", web::get().to(show))
        .route(
            "/setup/{secret}/directories/{id}/rotate-secret",
            web::post().to(rotate),
        )
        .route(
            "/setup/{secret}/accounts/{acc}/revoke",
            web::post().to(revoke),
        )
        .route(
            "/setup/{secret}/accounts/{acc}/relink",
            web::post().to(relink),
        );
}

/// A request path as the log may show it: a setup link's secret replaced.
pub fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix(setup_links::PATH_PREFIX) {
        Some(rest) => {
            let after = rest.find('/').map_or("", |i| &rest[i..]);
            format!("{}…{after}", setup_links::PATH_PREFIX).into()
        }
        None => path.into(),
    }
}

/// What the page says above its content after a form.
enum Notice {
    None,
    Done(String),
    /// A directory's new SCIM secret, shown this once.
    Secret {
        directory: String,
        secret: String,
    },
}

/// A refusal as a page of ours (404 for a dead link or anything outside its scope, 403
/// for a bad form); other errors as the generic HTML error.
fn refused(e: Error) -> Page {
    match e {
        Error::Rejected(r) => {
            let title = match r.status {
                404 => "Not found",
                403 => "Refused",
                _ => "Cannot do that",
            };
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(respond(
                status,
                layout(title, html! { p class="box error" { (r.message) } }),
            ))
        }
        other => Err(HtmlFailure(other)),
    }
}

/// `?q=` narrows a unit's profiles to one email.
async fn show(
    state: web::Data<AppState>,
    secret: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> Page {
    let secret = secret.into_inner();
    let email = q
        .get("q")
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    match load(&state, &secret, email.clone()).await {
        Ok(view) => Ok(render(
            &state,
            &secret,
            &view,
            Notice::None,
            email.as_deref(),
        )),
        Err(e) => refused(e),
    }
}

async fn load(state: &AppState, secret: &str, email: Option<String>) -> Result<SetupView, Error> {
    let secret = secret.to_string();
    state
        .db
        .run(move |c| {
            let link = setup_links::open(c, &secret)?;
            setup_links::view(c, link, email.as_deref())
        })
        .await
}

/// A form's fields, its link opened and its CSRF token checked (in that order: a dead
/// link is 404 whatever the form).
async fn form(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    secret: &str,
) -> Result<(SetupLinkRow, HashMap<String, String>), Error> {
    let body = bounded_body(payload, req, 16 * 1024).await?;
    let mut fields = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        fields
            .entry(k.into_owned())
            .or_insert_with(|| v.into_owned());
    }
    let s = secret.to_string();
    let link = state.db.run(move |c| setup_links::open(c, &s)).await?;
    setup_links::check_csrf(secret, fields.get("csrf").map(String::as_str))?;
    Ok((link, fields))
}

async fn rotate(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Page {
    let (secret, id) = path.into_inner();
    let done = async {
        let (link, fields) = form(&state, &req, payload, &secret).await?;
        let grace = match fields.get("grace_period_seconds").map(|v| v.trim()) {
            None | Some("") => state.secret_grace_seconds,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|g| (0..=directories::MAX_GRACE_SECONDS).contains(g))
                .ok_or_else(|| {
                    Rejected::invalid(format!(
                        "The grace period must be a number of seconds from 0 to {}.",
                        directories::MAX_GRACE_SECONDS
                    ))
                })?,
        };
        let (row, new_secret) = state
            .db
            .run(move |c| setup_links::rotate_secret(c, &link, &id, grace))
            .await?;
        state.directories.evict(&row.id);
        Ok::<_, Error>(Notice::Secret {
            directory: row.id,
            secret: new_secret,
        })
    }
    .await;
    after_form(&state, &secret, done).await
}

async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Page {
    let (secret, account) = path.into_inner();
    let done = async {
        let (link, _) = form(&state, &req, payload, &secret).await?;
        state
            .db
            .run(move |c| setup_links::revoke_account(c, &link, &account))
            .await?;
        Ok::<_, Error>(Notice::Done("The profile was revoked.".into()))
    }
    .await;
    after_form(&state, &secret, done).await
}

async fn relink(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Page {
    let (secret, account) = path.into_inner();
    let done = async {
        let (link, _) = form(&state, &req, payload, &secret).await?;
        state
            .db
            .run(move |c| setup_links::relink_account(c, &link, &account))
            .await?;
        // The worker provisions the email again now, not at its next poll.
        state.authorizations.wake();
        Ok::<_, Error>(Notice::Done(
            "The profile is being relinked; reload this page in a moment to see it.".into(),
        ))
    }
    .await;
    after_form(&state, &secret, done).await
}

/// The page again, with what the form did above it; or the refusal.
async fn after_form(state: &AppState, secret: &str, done: Result<Notice, Error>) -> Page {
    let notice = match done {
        Ok(n) => n,
        Err(e) => return refused(e),
    };
    match load(state, secret, None).await {
        Ok(view) => Ok(render(state, secret, &view, notice, None)),
        Err(e) => refused(e),
    }
}

fn render(
    state: &AppState,
    secret: &str,
    view: &SetupView,
    notice: Notice,
    searched: Option<&str>,
) -> HttpResponse {
    let csrf = setup_links::csrf_token(secret);
    let base = format!("/setup/{secret}");
    let heading = match &view.scope {
        Scope::Tenant { tenant, product } => format!("Directory sync for {tenant} ({product})"),
        Scope::Unit(_) => "Directory sync and linked profiles".to_string(),
    };
    let page = layout(
        &heading,
        html! {
            p { "This page is for your organisation's IT administrator. It works until "
                (timestamp(view.link.expires_at)) "; keep its address private: anyone with it can change this set-up." }
            @if let Notice::Done(msg) = &notice { p class="box" role="status" { (msg) } }
            h2 { "Directories" }
            @if view.directories.is_empty() {
                p { "No directory has been created for you yet. Ask your contact to create one, then reload this page." }
            }
            @for d in &view.directories {
                (directory_box(state, &base, &csrf, d, &notice))
            }
            @if let Some(accounts) = &view.accounts {
                h2 { "Linked profiles" }
                form method="get" action=(base) {
                    label for="q" { "Find a profile by email" }
                    input type="email" id="q" name="q" value=(searched.unwrap_or(""));
                    button type="submit" class="secondary" { "Search" }
                }
                @if view.accounts_total > accounts.len() {
                    p { "Showing " (accounts.len()) " of " (view.accounts_total) " profiles; search by email for the others." }
                }
                @if accounts.is_empty() && searched.is_some() {
                    p { "No profile with that email." }
                } @else {
                    (accounts_table(&base, &csrf, accounts))
                }
            }
            h2 { "Set-up by identity provider" }
            (idp_steps())
        },
    );
    respond(StatusCode::OK, page)
}

fn directory_box(
    state: &AppState,
    base: &str,
    csrf: &str,
    d: &DirectoryView,
    notice: &Notice,
) -> Markup {
    let dir = &d.directory;
    let endpoint = scim_base_url(&state.external_url, &dir.id);
    let pulled = dir.provider_type == "google";
    html! {
        div class="box" id=(format!("directory-{}", dir.id)) {
            h3 { (dir.name) }
            p { "Type: " code { (dir.provider_type) }
                @if dir.deactivated { " · " strong { "deactivated" } } }
            @if pulled {
                p { "Synced from Google Workspace by the gateway: there is no SCIM endpoint to configure." }
            } @else {
                p { "SCIM endpoint (base URL): " br; code class="endpoint" { (endpoint) } }
            }
            p { "Sync state: " strong { (d.users) } " users, " strong { (d.groups) } " groups; last change "
                @match d.last_change {
                    Some(t) => { time datetime=(timestamp(t)) { (timestamp(t)) } }
                    None => { "none yet" }
                }
                "." }
            @if let Notice::Secret { directory, secret } = notice {
                @if directory == &dir.id {
                    div class="box" role="status" {
                        p { strong { "New SCIM secret" } " (shown this once: paste it into your identity provider now):" }
                        input type="text" readonly value=(secret) aria-label="New SCIM secret";
                        p { code class="secret" { (secret) } }
                    }
                }
            }
            @if !pulled {
                form method="post" action=(format!("{base}/directories/{}/rotate-secret", dir.id)) {
                    input type="hidden" name="csrf" value=(csrf);
                    label for=(format!("grace-{}", dir.id)) { "Keep the old secret working for (seconds, optional; 0 ends it now)" }
                    input type="text" inputmode="numeric" id=(format!("grace-{}", dir.id)) name="grace_period_seconds";
                    button type="submit" { "Rotate SCIM secret" }
                }
            }
        }
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn accounts_table(base: &str, csrf: &str, accounts: &[Value]) -> Markup {
    html! {
        @if accounts.is_empty() {
            p { "No profile is linked yet." }
        } @else {
            table {
                tr { th { "Email" } th { "Calendar" } th { "Conferencing" } th { "Connected" } th { "" } }
                @for a in accounts {
                    @let id = text(&a["account_id"]);
                    @let profile = &a["profiles"][0];
                    tr {
                        td { (text(&a["email"])) }
                        td { (text(&profile["provider_name"])) " " (text(&profile["profile_name"])) }
                        td {
                            @for p in a["conferencing_profiles"].as_array().into_iter().flatten() {
                                (text(&p["provider_name"])) " " (text(&p["profile_name"])) br;
                            }
                        }
                        td { @if profile["profile_connected"] == Value::Bool(true) { "yes" } @else { "no (" (text(&a["state"])) ")" } }
                        td {
                            form method="post" action=(format!("{base}/accounts/{id}/revoke")) {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" class="secondary" { "Revoke profile" }
                            }
                            form method="post" action=(format!("{base}/accounts/{id}/relink")) {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" class="secondary" { "Relink profile" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Set-up steps for each identity provider: "endpoint" and "secret" are the directory's
/// SCIM endpoint above and a secret from "Rotate SCIM secret".
fn idp_steps() -> Markup {
    const STEPS: &[(&str, &[&str])] = &[
        ("Okta", &[
            "In the Okta Admin Console, open Applications → Applications → Create App Integration (SAML 2.0 or OIDC), or open the app you already use for this product.",
            "On its General tab, under App Settings, set Provisioning to SCIM and save.",
            "On the Provisioning tab → Integration: SCIM connector base URL is the directory's SCIM endpoint above; Unique identifier field for users is userName; tick Push New Users, Push Profile Updates and Push Groups; Authentication Mode HTTP Header, Authorization (Bearer) the SCIM secret (rotate it here to get one). Test Connector Configuration, then Save.",
            "Under Provisioning → To App, enable Create Users, Update User Attributes and Deactivate Users.",
            "Assign people on the Assignments tab and groups on the Push Groups tab.",
        ]),
        ("Microsoft Entra ID", &[
            "In the Entra admin center, open Enterprise applications → New application → Create your own application (\"Integrate any other application you don't find in the gallery\").",
            "Open Provisioning → Get started and set Provisioning Mode to Automatic.",
            "Tenant URL: the directory's SCIM endpoint above. Secret Token: the SCIM secret. Test Connection, then Save.",
            "Assign users and groups under Users and groups, then Start provisioning (Entra syncs about every 40 minutes).",
        ]),
        ("JumpCloud", &[
            "In the JumpCloud Admin Portal, open SSO Applications → Add New Application → Custom Application, and enable Identity Management (SCIM 2.0).",
            "Base URL: the directory's SCIM endpoint above. Token Key: the SCIM secret. Test Connection, then Activate.",
            "Bind the user groups to provision on the application's User Groups tab.",
        ]),
        ("OneLogin", &[
            "In OneLogin Administration, open Applications → Add App and choose \"SCIM Provisioner with SAML (SCIM v2 Enterprise)\".",
            "On Configuration: SCIM Base URL is the directory's SCIM endpoint above, SCIM Bearer Token the SCIM secret; click Enable under API Connection.",
            "On Provisioning, tick Enable provisioning; assign users (and map groups under Parameters).",
        ]),
        ("Google Workspace", &[
            "Google Workspace does not push SCIM: the gateway reads your directory. Ask your contact for the client ID of their service account.",
            "In the Google Admin console, open Security → Access and data control → API controls → Manage Domain Wide Delegation → Add new.",
            "Enter that client ID and the scopes https://www.googleapis.com/auth/admin.directory.user.readonly, https://www.googleapis.com/auth/admin.directory.group.readonly and https://www.googleapis.com/auth/admin.directory.group.member.readonly, then Authorize.",
            "Tell your contact your domain and the email of an administrator; the directory then appears above and syncs on its own.",
        ]),
    ];
    html! {
        @for (name, steps) in STEPS {
            details class="box" {
                summary { strong { (name) } }
                ol { @for s in *steps { li { (s) } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_secret_never_reaches_the_log() {
        assert_eq!(super::loggable("/setup/s3cr3t"), "/setup/…");
        assert_eq!(
            super::loggable("/setup/s3cr3t/directories/d/rotate-secret"),
            "/setup/…/directories/d/rotate-secret"
        );
        assert_eq!(
            super::loggable("/api/v1/setup_links"),
            "/api/v1/setup_links"
        );
    }
}
