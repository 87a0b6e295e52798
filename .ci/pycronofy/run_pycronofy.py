#!/usr/bin/env python3
"""Wire compatibility of scimgate's Enterprise Connect OAuth server with Cronofy's own
Python SDK, pycronofy (DESIGN.md §6.1-6.6).

Starts `scimgate dev-providers` (fake Google, Microsoft, Zoom, Webex and Indeed) and
`scimgate` (serve) on free loopback ports, registers an application, consents as a Google
Workspace admin would in a browser, then drives every Enterprise Connect call pycronofy has
against the gateway: token exchange, refresh (and refresh-token reuse), service-account
authorizations (single and batch) with signed callbacks, the delegated code exchange,
UserInfo and revocation; and the organizational unit part: a link token, the unit consent
adding Zoom (in the browser), the unit's tokens, refresh and revocation, and the Zoom
conferencing profile it gives alice in UserInfo.

    run_pycronofy.py --binary target/debug/scimgate [--database-url URL] [--quiet]

--database-url defaults to a fresh SQLite file. A postgres:// URL without a search_path
gets a fresh schema (created and dropped with psql). Exits 1 on any failed check.
"""

import argparse
import base64
import html.parser
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import requests

import pycronofy
from pycronofy import settings as cronofy_settings
from pycronofy.exceptions import PyCronofyRequestError

HTTP_TIMEOUT = 10
CALLBACK_WAIT = 30.0

# ---------------------------------------------------------------------------------------
# Results


class Checks:
    def __init__(self):
        self.rows = []  # (step, call, ok, detail)

    def record(self, step, call, ok, detail):
        self.rows.append((step, call, bool(ok), detail))
        return ok

    @property
    def failed(self):
        return [r for r in self.rows if not r[2]]

    def table(self):
        w_step = max(len("step"), *(len(r[0]) for r in self.rows)) if self.rows else 4
        w_call = max(len("SDK call"), *(len(r[1]) for r in self.rows)) if self.rows else 8
        lines = [f"{'step':<{w_step}}  {'SDK call':<{w_call}}  result"]
        lines.append(f"{'-' * w_step}  {'-' * w_call}  {'-' * 6}")
        for step, call, ok, detail in self.rows:
            lines.append(f"{step:<{w_step}}  {call:<{w_call}}  {'ok  ' if ok else 'FAIL'}  {detail}")
        return "\n".join(lines)


class StepFailed(Exception):
    """A failed expectation inside a step (its message goes into the table)."""


def expect(cond, message):
    if not cond:
        raise StepFailed(message)


# Every HTTP response pycronofy receives, so the raw token bodies and headers can be checked.
LAST_RESPONSES = []


def _hook(response, *args, **kwargs):
    LAST_RESPONSES.append(response)
    del LAST_RESPONSES[:-20]


def last_response():
    return LAST_RESPONSES[-1] if LAST_RESPONSES else None


def describe_error(e):
    if isinstance(e, PyCronofyRequestError):
        body = e.response.text[:200] if e.response is not None else ""
        return f"PyCronofyRequestError {e.response.status_code}: {body}"
    if isinstance(e, StepFailed):
        return str(e)
    return f"{type(e).__name__}: {e}"


def expect_request_error(fn, status, error=None):
    """Runs a pycronofy call that must raise PyCronofyRequestError with `status` (and the
    RFC 6749 `error` code in the JSON body when given). Returns a short description."""
    try:
        fn()
    except PyCronofyRequestError as e:
        got = e.response.status_code
        expect(got == status, f"raised with status {got}, expected {status}: {e.response.text[:200]}")
        if error is not None:
            try:
                body = e.response.json()
            except ValueError:
                raise StepFailed(f"status {got} but the body is not JSON: {e.response.text[:200]!r}")
            expect(body.get("error") == error, f"status {got} with body {body}, expected error {error!r}")
            return f"raised PyCronofyRequestError {got} {{\"error\": \"{error}\"}}"
        return f"raised PyCronofyRequestError {got}"
    raise StepFailed(f"did not raise (expected {status})")


# ---------------------------------------------------------------------------------------
# Processes


class Processes:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv, env, stdout=None):
        out = stdout if stdout is not None else open(os.path.join(self.workdir, f"{name}.out"), "wb")
        err = open(os.path.join(self.workdir, f"{name}.err"), "wb")
        p = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.procs.append((name, p))
        return p

    def stop_all(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def logs(self, tail=40):
        out = []
        for name, _ in self.procs:
            for ext in ("out", "err"):
                path = os.path.join(self.workdir, f"{name}.{ext}")
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        text = re.sub(r"\x1b\[[0-9;]*m", "", f.read().decode("utf-8", "replace"))
                        lines = text.splitlines()[-tail:]
                    if lines:
                        out.append(f"--- {name}.{ext} (last {len(lines)} lines)")
                        out.extend(lines)
        return "\n".join(out)


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCIMGATE_")}
    env.setdefault("RUST_BACKTRACE", "1")
    return env


# Every SCIMGATE_* line `scimgate dev-providers` prints (src/devproviders/mod.rs, run_cli):
# the gateway starts only once all of them are read, and gets every one it printed.
DEV_PROVIDER_SETTINGS = {
    "SCIMGATE_GOOGLE_SERVICE_ACCOUNT_KEY",
    "SCIMGATE_GOOGLE_ADMIN_URL",
    "SCIMGATE_MICROSOFT_CLIENT_ID",
    "SCIMGATE_MICROSOFT_CLIENT_SECRET",
    "SCIMGATE_MICROSOFT_LOGIN_URL",
    "SCIMGATE_MICROSOFT_GRAPH_URL",
    "SCIMGATE_ZOOM_CLIENT_ID",
    "SCIMGATE_ZOOM_CLIENT_SECRET",
    "SCIMGATE_ZOOM_OAUTH_URL",
    "SCIMGATE_ZOOM_API_URL",
    "SCIMGATE_WEBEX_CLIENT_ID",
    "SCIMGATE_WEBEX_CLIENT_SECRET",
    "SCIMGATE_WEBEX_API_URL",
    "SCIMGATE_INDEED_CLIENT_ID",
    "SCIMGATE_INDEED_CLIENT_SECRET",
    "SCIMGATE_INDEED_AUTHORIZE_URL",
    "SCIMGATE_INDEED_TOKEN_URL",
    "SCIMGATE_INDEED_LOOKUP_URL",
}


def start_dev_providers(procs, binary, workdir):
    """Starts the fakes on a free port; returns the SCIMGATE_* settings they print (a dict
    the reader thread keeps adding to, so lines printed later show up in it)."""
    key_file = os.path.join(workdir, "google-key.json")
    p = procs.start(
        "dev-providers",
        [binary, "dev-providers", "--listen", "127.0.0.1:0", "--key-file", key_file],
        base_env(),
        stdout=subprocess.PIPE,
    )
    settings = {}
    wanted = DEV_PROVIDER_SETTINGS
    log = open(os.path.join(workdir, "dev-providers.out"), "wb")
    done = threading.Event()

    def pump():
        for raw in p.stdout:
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", "replace").strip()
            m = re.match(r"^(SCIMGATE_[A-Z0-9_]+)=(.*)$", line)
            if m:
                settings[m.group(1)] = m.group(2)
                if wanted <= settings.keys():
                    done.set()
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    if not done.wait(120) or not wanted <= settings.keys():
        missing = sorted(wanted - settings.keys())
        raise RuntimeError(f"dev-providers did not print {missing} (exit status {p.poll()})")
    return settings


def start_gateway(procs, binary, workdir, database_url, provider_settings, api_key):
    env = base_env()
    env.update(dict(provider_settings))
    env.update(
        {
            "SCIMGATE_LISTEN": "127.0.0.1:0",
            "SCIMGATE_DATABASE_URL": database_url,
            "SCIMGATE_API_KEYS": api_key,
            "SCIMGATE_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "SCIMGATE_WEBHOOK_ALLOW_PRIVATE": "true",
            "SCIMGATE_ADMIN_KEY_FILE": os.path.join(workdir, "admin-key"),
            "SCIMGATE_ENCRYPTION_KEY_FILE": os.path.join(workdir, "encryption-key"),
        }
    )
    p = procs.start("scimgate", [binary], env)
    out = os.path.join(workdir, "scimgate.out")
    deadline = time.monotonic() + 120
    base = None
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"scimgate exited with status {p.returncode}")
        with open(out, "rb") as f:
            m = re.search(rb"^listening on (http://\S+)", f.read(), re.M)
        if m:
            base = m.group(1).decode().rstrip("/")
            break
        time.sleep(0.1)
    if base is None:
        raise RuntimeError("scimgate did not print 'listening on' within 120 s")
    while time.monotonic() < deadline:
        try:
            if (
                requests.get(f"{base}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
                and requests.get(f"{base}/readyz", timeout=HTTP_TIMEOUT).status_code == 200
            ):
                return base
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("scimgate never answered /healthz and /readyz with 200")


# ---------------------------------------------------------------------------------------
# PostgreSQL: a fresh schema per run


def prepare_database(url):
    """Returns (url to use, cleanup function). For PostgreSQL, the schema named by the URL's
    `options=-csearch_path=...` (or a new `pycronofy_<random>` one, added to the URL) is
    created with psql when missing, and then dropped at the end."""
    if not url.startswith(("postgres://", "postgresql://")):
        return url, lambda: None
    m = re.search(r"search_path=([A-Za-z0-9_]+)", urllib.parse.unquote(url))
    if m:
        schema = m.group(1)
    else:
        schema = "pycronofy_" + secrets.token_hex(6)
        url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    quiet = dict(os.environ, PGOPTIONS="--client-min-messages=warning")
    exists = subprocess.run(
        ["psql", url, "-Atqc", f"SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'"],
        env=quiet, check=True, capture_output=True, text=True,
    ).stdout.strip() == "1"
    if exists:
        return url, lambda: None
    subprocess.run(["psql", url, "-qc", f"CREATE SCHEMA {schema}"], env=quiet, check=True, stdout=subprocess.DEVNULL)

    def drop():
        # The URL's own `options` wins over PGOPTIONS: silence the cascade's NOTICE here.
        subprocess.run(
            ["psql", url, "-q", "-c", "SET client_min_messages = warning",
             "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"],
            env=quiet, stdout=subprocess.DEVNULL, check=False,
        )

    return url, drop


# ---------------------------------------------------------------------------------------
# Callback receiver


class Callbacks:
    """A loopback HTTP server that records every POST by path."""

    def __init__(self):
        self.received = {}
        self.cond = threading.Condition()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with outer.cond:
                    outer.received.setdefault(self.path, []).append((dict(self.headers.items()), body))
                    outer.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, paths, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(p in self.received for p in paths):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return {p: self.received[p][0] for p in paths if p in self.received}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------
# The admin's consent, as a browser would do it


class FormParser(html.parser.HTMLParser):
    """The forms of a page (radio buttons: only the checked one's value counts, as a
    browser submits it) and its links."""

    def __init__(self):
        super().__init__()
        self.forms = []  # (action, {name: value})
        self.links = []  # {attribute: value} of each <a>
        self._current = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = (a.get("action", ""), {})
            self.forms.append(self._current)
        elif tag == "a":
            self.links.append(a)
        elif tag == "input" and self._current is not None and a.get("name"):
            if (a.get("type") or "").lower() in ("radio", "checkbox") and "checked" not in a:
                return
            self._current[1][a["name"]] = a.get("value") or ""

    def link(self, css_class, **attrs):
        """The first link with `css_class` among its classes (and these attributes)."""
        for a in self.links:
            if css_class in (a.get("class") or "").split() and all(a.get(k) == v for k, v in attrs.items()):
                return a
        return None

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def parse_page(html_text):
    parser = FormParser()
    parser.feed(html_text)
    return parser


def submit_google_form(s, page_url, html_text):
    """Submits a consent page's Google form (domain example.com, admin@example.com) as the
    browser would; returns the response (not followed)."""
    parser = parse_page(html_text)
    form = next((f for f in parser.forms if f[0].endswith("/enterprise_connect/oauth/google")), None)
    expect(form is not None, f"no Google form on the consent page (forms: {[f[0] for f in parser.forms]})")
    action, fields = form
    expect("flow" in fields and "csrf" in fields, f"the Google form lacks flow/csrf: {sorted(fields)}")
    fields.update({"domain": "example.com", "admin_email": "admin@example.com"})
    return s.post(urllib.parse.urljoin(page_url, action), data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT)


def code_from_redirect(location, redirect_uri, state):
    expect(location.startswith(redirect_uri + "?"), f"redirected to {location!r}, not to {redirect_uri}")
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    expect(params.get("state") == [state], f"state came back as {params.get('state')}")
    expect("code" in params, f"no code in {location}")
    return params["code"][0]


def google_consent(base, client_id, redirect_uri, state):
    """Returns the code the admin's browser brings back to redirect_uri."""
    s = requests.Session()
    q = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "service_account/accounts/manage",
            "delegated_scope": "read_write",
            "state": state,
            "provider_name": "google",
        }
    )
    r = s.get(f"{base}/enterprise_connect/oauth/authorize?{q}", allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code in (302, 303), f"authorize answered {r.status_code}, expected a redirect: {r.text[:200]}")
    consent_url = urllib.parse.urljoin(base + "/", r.headers["Location"])
    expect("/enterprise_connect/oauth/consent" in consent_url, f"authorize redirected to {consent_url}")
    r = s.get(consent_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 200, f"consent page answered {r.status_code}: {r.text[:200]}")
    r = submit_google_form(s, consent_url, r.text)
    expect(r.status_code in (302, 303), f"the Google form answered {r.status_code}: {r.text[:300]}")
    return code_from_redirect(r.headers.get("Location", ""), redirect_uri, state)


def unit_conferencing_consent(base, client_id, redirect_uri, state, link_token, provider, signin_prefix):
    """The organizational unit flow (DESIGN.md §6.4) as the admin's browser runs it, adding
    the conferencing `provider` to the unit of the link token's (Google) service account:
    (1) the Google proof, (2) the provider's sign-in (the dev-providers stand-in, which lets
    account zacc_demo in), (3) join the existing unit. Returns (code, a note for the table)."""
    s = requests.Session()
    q = urllib.parse.urlencode(
        [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("scope", "organizational_unit_use_integrations"),
            ("capabilities[]", "conferencing"),
            ("conferencing_provider_name", provider),
            ("ou_link_token", link_token),
        ]
    )
    start = f"{base}/organizational_unit_oauth?{q}"
    r = s.get(start, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 303, f"GET /organizational_unit_oauth answered {r.status_code}, expected 303: {r.text[:300]}")
    cookie = r.headers.get("Set-Cookie", "")
    expect(cookie, "no flow cookie on the 303")
    expect("samesite=strict" not in cookie.lower(), f"a SameSite=Strict flow cookie cannot survive the provider's redirect: {cookie}")
    page_url = urllib.parse.urljoin(start, r.headers["Location"])

    def page(step):
        r = s.get(page_url, allow_redirects=False, timeout=HTTP_TIMEOUT)
        expect(r.status_code == 200, f"step {step}: the consent page {page_url} answered {r.status_code}: {r.text[:300]}")
        return r.text

    # Step 1: prove admin access to the linked Google service account.
    r = submit_google_form(s, page_url, page(1))
    expect(r.status_code == 303, f"step 1: the Google form answered {r.status_code}: {r.text[:300]}")
    back = urllib.parse.urljoin(page_url, r.headers.get("Location", ""))
    expect(back.split("?")[0] == page_url.split("?")[0], f"step 1: redirected to {back}, not back to {page_url}")

    # Step 2: sign in to the conferencing provider (its page lives on the dev-providers origin).
    parsed = parse_page(page(2))
    a = parsed.link("conferencing")
    expect(a is not None and a.get("href"), f"step 2: no <a class=\"button conferencing\"> (links: {[l.get('class') for l in parsed.links]}, forms: {[f[0] for f in parsed.forms]})")
    signin = urllib.parse.urljoin(page_url, a["href"])
    expect(signin.startswith(signin_prefix), f"step 2: the sign-in link {signin} is not at the configured {signin_prefix}")
    r = s.get(signin, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 200, f"step 2: the {provider} sign-in page {signin} answered {r.status_code}: {r.text[:300]}")
    allow = parse_page(r.text).link("authorize", **{"data-account": "zacc_demo"})
    expect(allow is not None and allow.get("href"), f"step 2: no <a class=\"authorize\" data-account=\"zacc_demo\"> on {signin}")
    r = s.get(urllib.parse.urljoin(signin, allow["href"]), allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 302, f"step 2: {provider}'s authorize answered {r.status_code}: {r.text[:300]}")
    provider_back = urllib.parse.urljoin(signin, r.headers.get("Location", ""))
    expect(provider_back.startswith(f"{base}/enterprise_connect/oauth/conferencing?"), f"step 2: {provider} sent the browser to {provider_back}")
    r = s.get(provider_back, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 303, f"step 2: GET {urllib.parse.urlsplit(provider_back).path} answered {r.status_code}: {r.text[:300]}")
    back = urllib.parse.urljoin(provider_back, r.headers.get("Location", ""))
    expect(back.split("?")[0] == page_url.split("?")[0], f"step 2: redirected to {back}, not back to {page_url}")

    # Step 3: join the unit the service account already belongs to (pre-selected).
    parsed = parse_page(page(3))
    form = next((f for f in parsed.forms if f[0].endswith("/enterprise_connect/oauth/join")), None)
    expect(form is not None, f"step 3: no join form (forms: {[f[0] for f in parsed.forms]})")
    action, fields = form
    expect("flow" in fields and "csrf" in fields, f"step 3: the join form lacks flow/csrf: {sorted(fields)}")
    expect(fields.get("unit") == "existing", f"step 3: the checked unit is {fields.get('unit')!r}, expected 'existing'")
    r = s.post(urllib.parse.urljoin(page_url, action), data=fields, allow_redirects=False, timeout=HTTP_TIMEOUT)
    expect(r.status_code == 303, f"step 3: the join form answered {r.status_code}: {r.text[:300]}")
    code = code_from_redirect(r.headers.get("Location", ""), redirect_uri, state)
    return code, f"303 -> Google proof -> {provider} sign-in (zacc_demo) -> join existing -> 303 redirect_uri?code&state"


# ---------------------------------------------------------------------------------------
# The scenario


def run_scenario(checks, base, api_key, callbacks, provider_settings):
    cronofy_settings.API_BASE_URL = base
    cronofy_settings.APP_BASE_URL = base
    cronofy_settings.REQUEST_HOOK = {"response": _hook}

    def step(name, call):
        """Runs the decorated function at once and records its row: ok with the string it
        returns, FAIL with the exception."""

        def wrap(fn):
            try:
                detail = fn()
                checks.record(name, call, True, detail or "")
                return True
            except Exception as e:  # noqa: BLE001 - every failure becomes a table row
                checks.record(name, call, False, describe_error(e))
                return False

        return wrap

    ctx = {}
    oauth_return = f"{callbacks.base}/oauth-return"

    # 0. Application and consent (plain HTTP: pycronofy has no Enterprise Connect URL builder).
    @step("0a", "POST /api/v1/applications (admin API)")
    def _():
        r = requests.post(
            f"{base}/api/v1/applications",
            headers={"Authorization": f"Api-Key {api_key}"},
            json={"name": "pycronofy wire test", "redirect_uris": [oauth_return]},
            timeout=HTTP_TIMEOUT,
        )
        expect(r.status_code == 201, f"answered {r.status_code}: {r.text[:200]}")
        data = r.json()["data"]
        for k in ("id", "client_id", "client_secret", "name", "redirect_uris"):
            expect(k in data, f"no {k} in {sorted(data)}")
        ctx["client_id"], ctx["client_secret"] = data["client_id"], data["client_secret"]
        return f"201, client_id {data['client_id']}"

    if "client_id" not in ctx:
        return
    client_id, client_secret = ctx["client_id"], ctx["client_secret"]

    @step("0b", "browser: Enterprise Connect consent (google)")
    def _():
        ctx["sa_code"] = google_consent(base, client_id, oauth_return, "S-consent")
        return "303 -> consent form -> 303 redirect_uri?code&state"

    if "sa_code" not in ctx:
        return

    sa = pycronofy.Client(client_id=client_id, client_secret=client_secret)
    if sa.request_handler.base_url != base or sa.app_base_url != base:
        checks.record("0c", "pycronofy.Client() base URLs", False, f"{sa.request_handler.base_url} / {sa.app_base_url}")
        return

    # 1. The service account's tokens.
    @step("1", "get_authorization_from_code(code, redirect_uri)")
    def _():
        tokens = sa.get_authorization_from_code(ctx["sa_code"], redirect_uri=oauth_return)
        for k in ("access_token", "refresh_token", "token_expiration"):
            expect(tokens.get(k), f"no {k} in {tokens}")
        raw = last_response()
        body = raw.json()
        expect(body.get("token_type") == "bearer", f"token_type {body.get('token_type')!r}")
        expect(isinstance(body.get("expires_in"), int), f"expires_in {body.get('expires_in')!r}")
        expect(str(body.get("service_account_id", "")).startswith("ser_"), f"service_account_id {body.get('service_account_id')!r}")
        expect("no-store" in raw.headers.get("Cache-Control", ""), f"Cache-Control {raw.headers.get('Cache-Control')!r}")
        ctx["ser"] = body["service_account_id"]
        ctx["sa_tokens"] = tokens
        return f"tokens, expires_in {body['expires_in']}, {body['service_account_id']}, scope {body.get('scope')!r}"

    if "sa_tokens" not in ctx:
        return

    # 2. Refresh.
    @step("2", "refresh_authorization()")
    def _():
        old = ctx["sa_tokens"]
        tokens = sa.refresh_authorization()
        expect(tokens["access_token"] and tokens["access_token"] != old["access_token"], "the access token did not change")
        expect(tokens["refresh_token"], "no refresh token")
        expect(tokens["refresh_token"] != old["refresh_token"], "the refresh token did not rotate")
        body = last_response().json()
        expect(body.get("token_type") == "bearer" and isinstance(body.get("expires_in"), int), f"response {sorted(body)}")
        ctx["sa_refreshed"] = tokens
        return f"new access and refresh tokens, expires_in {body['expires_in']}"

    @step("2a", "refresh_authorization() with a wrong client_secret")
    def _():
        bad = pycronofy.Client(client_id=client_id, client_secret=client_secret + "x", refresh_token=sa.auth.refresh_token)
        return expect_request_error(bad.refresh_authorization, 401, "invalid_client")

    @step("2b", "refresh_authorization() again (2a neither rotated nor revoked)")
    def _():
        before = sa.auth.refresh_token
        tokens = sa.refresh_authorization()
        expect(tokens["refresh_token"] and tokens["refresh_token"] != before, "the refresh token did not rotate")
        return "new access and refresh tokens"

    @step("2c", "userinfo() with the service account's new token")
    def _():
        info = sa.userinfo()
        expect(info.get("sub") == ctx["ser"], f"sub {info.get('sub')!r}, expected {ctx['ser']}")
        return f"sub {info['sub']}, cronofy.type {info.get('cronofy.type')!r}"

    # 3. Service-account authorizations and their signed callbacks.
    scope = "read_write"
    cb = {
        "alice": f"{callbacks.base}/cb/alice",
        "nobody": f"{callbacks.base}/cb/nobody",
        "bob": f"{callbacks.base}/cb/bob",
        "alice2": f"{callbacks.base}/cb/alice2",
        "bob2": f"{callbacks.base}/cb/bob2",
    }

    @step("3a", "authorize_with_service_account(alice@example.com)")
    def _():
        sa.authorize_with_service_account("alice@example.com", scope, cb["alice"], state="S-alice")
        status = last_response().status_code
        expect(status == 202, f"answered {status}")
        return "202"

    @step("3b", "authorize_with_service_account(nobody@example.com)")
    def _():
        sa.authorize_with_service_account("nobody@example.com", scope, cb["nobody"], state="S-nobody")
        status = last_response().status_code
        expect(status == 202, f"answered {status}")
        return "202"

    @step("3c", "authorize_multiple_accounts_via_service_account([bob, alice, bob], state)")
    def _():
        sa.authorize_multiple_accounts_via_service_account(
            [
                {"email": "bob@example.com", "scope": scope, "callback_url": cb["bob"], "state": "S-bob"},
                {"email": "alice@example.com", "scope": scope, "callback_url": cb["alice2"]},
                {"email": "bob@example.com", "scope": scope, "callback_url": cb["bob2"], "state": "S-bob2"},
            ],
            state="S-batch",
        )
        status = last_response().status_code
        expect(status == 202, f"answered {status}")
        return "202"

    @step("3d", "callbacks arrive (<= 30 s)")
    def _():
        paths = [urllib.parse.urlsplit(u).path for u in cb.values()]
        got = callbacks.wait_for(paths, CALLBACK_WAIT)
        missing = [p for p in paths if p not in got]
        expect(not missing, f"no callback at {missing} within {CALLBACK_WAIT:.0f} s")
        ctx["callbacks"] = {name: got[urllib.parse.urlsplit(u).path] for name, u in cb.items()}
        return f"{len(got)} callbacks"

    if "callbacks" not in ctx:
        return

    @step("3e", "hmac_valid(Cronofy-HMAC-SHA256, body) on each callback")
    def _():
        for name, (headers, body) in ctx["callbacks"].items():
            h = {k.lower(): v for k, v in headers.items()}
            hmac_header = h.get("cronofy-hmac-sha256")
            expect(hmac_header, f"{name}: no Cronofy-HMAC-SHA256 header")
            text = body.decode("utf-8")
            expect(sa.hmac_valid(hmac_header, text), f"{name}: hmac_valid is False")
            expect(not sa.hmac_valid(hmac_header, text + " "), f"{name}: hmac_valid accepts a changed body")
        return f"valid for all {len(ctx['callbacks'])}, invalid for a changed body"

    def authorization(name):
        return json.loads(ctx["callbacks"][name][1])["authorization"]

    @step("3f", "callback bodies: code/state, not_found")
    def _():
        a = authorization("alice")
        expect(a.get("code") and a.get("state") == "S-alice", f"alice: {a}")
        n = authorization("nobody")
        expect(n.get("error") == "not_found" and n.get("state") == "S-nobody" and "code" not in n, f"nobody: {n}")
        b = authorization("bob")
        expect(b.get("code") and b.get("state") == "S-bob", f"bob: {b}")
        a2 = authorization("alice2")
        expect(a2.get("code") and a2.get("state") == "S-batch", f"alice again (batch state): {a2}")
        return "alice/bob: code+state; nobody: error not_found; batch state applied"

    # 4. The account's tokens from the delegated code, and UserInfo.
    alice = pycronofy.Client(client_id=client_id, client_secret=client_secret)

    @step("4a", "get_authorization_from_code(alice code, redirect_uri=callback_url)")
    def _():
        tokens = alice.get_authorization_from_code(authorization("alice")["code"], redirect_uri=cb["alice"])
        for k in ("access_token", "refresh_token", "token_expiration"):
            expect(tokens.get(k), f"no {k}")
        body = last_response().json()
        expect(str(body.get("account_id", "")).startswith("acc_") and body.get("sub") == body.get("account_id"), f"account_id/sub {body.get('account_id')!r}/{body.get('sub')!r}")
        lp = body.get("linking_profile") or {}
        expect(lp.get("provider_name") == "google" and lp.get("profile_name") == "alice@example.com", f"linking_profile {lp}")
        ctx["alice_acc"] = body["account_id"]
        ctx["alice_access_token"] = tokens["access_token"]
        return f"{body['account_id']}, expires_in {body.get('expires_in')}, linking_profile google alice@example.com"

    @step("4b", "userinfo() as alice")
    def _():
        info = alice.userinfo()
        expect(str(info.get("sub", "")).startswith("acc_"), f"sub {info.get('sub')!r}")
        expect(info.get("sub") == ctx.get("alice_acc"), f"sub {info.get('sub')} is not the token's account {ctx.get('alice_acc')}")
        expect(info.get("email") == "alice@example.com", f"email {info.get('email')!r}")
        expect(info.get("cronofy.type") == "account", f"cronofy.type {info.get('cronofy.type')!r}")
        profiles = (info.get("cronofy.data") or {}).get("profiles") or []
        expect(profiles, f"no cronofy.data.profiles in {info}")
        p = profiles[0]
        expect(p.get("provider_name") == "google", f"profiles[0].provider_name {p.get('provider_name')!r}")
        expect(p.get("profile_connected") is True, f"profiles[0].profile_connected {p.get('profile_connected')!r}")
        conf = (info.get("cronofy.data") or {}).get("conferencing_profiles")
        expect(conf == [], f"conferencing_profiles {conf!r}, expected [] (no unit has conferencing yet)")
        return f"sub {info['sub']}, email alice@example.com, profiles[0] google connected, conferencing_profiles []"

    alice2 = pycronofy.Client(client_id=client_id, client_secret=client_secret)

    @step("4c", "get_authorization_from_code(alice's 2nd code) -> same account")
    def _():
        alice2.get_authorization_from_code(authorization("alice2")["code"], redirect_uri=cb["alice2"])
        acc = last_response().json().get("account_id")
        expect(acc == ctx.get("alice_acc"), f"account {acc!r}, expected {ctx.get('alice_acc')!r}")
        return f"same {acc}"

    @step("4d", "get_authorization_from_code(that code) again")
    def _():
        c = pycronofy.Client(client_id=client_id, client_secret=client_secret)
        return expect_request_error(lambda: c.get_authorization_from_code(authorization("alice2")["code"], redirect_uri=cb["alice2"]), 400, "invalid_grant")

    @step("4e", "userinfo() with the tokens of the reused code (RFC 6749 4.1.2)")
    def _():
        return expect_request_error(alice2.userinfo, 401) + " (revoked)"

    @step("4f", "get_authorization_from_code(code, another redirect_uri)")
    def _():
        # bob's second code redeemed with bob's first callback URL: a mismatch.
        c = pycronofy.Client(client_id=client_id, client_secret=client_secret)
        return expect_request_error(lambda: c.get_authorization_from_code(authorization("bob2")["code"], redirect_uri=cb["bob"]), 400, "invalid_grant")

    # 5. Revocation.
    @step("5a", "revoke_authorization() as alice")
    def _():
        alice.revoke_authorization()
        status = last_response().status_code
        expect(status == 200, f"answered {status}")
        return "200"

    @step("5b", "userinfo() with the revoked token")
    def _():
        # revoke_authorization clears the client's tokens: a client with the revoked one.
        stale = pycronofy.Client(client_id=client_id, client_secret=client_secret, access_token=ctx["alice_access_token"])
        return expect_request_error(stale.userinfo, 401)

    # 6. Client authentication.
    @step("6a", "get_authorization_from_code(bob code) with a wrong client_secret")
    def _():
        bad = pycronofy.Client(client_id=client_id, client_secret=client_secret + "x")
        return expect_request_error(lambda: bad.get_authorization_from_code(authorization("bob")["code"], redirect_uri=cb["bob"]), 401, "invalid_client")

    @step("6b", "get_authorization_from_code(bob code) with the right secret")
    def _():
        c = pycronofy.Client(client_id=client_id, client_secret=client_secret)
        try:
            c.get_authorization_from_code(authorization("bob")["code"], redirect_uri=cb["bob"])
        except PyCronofyRequestError as e:
            raise StepFailed(f"{describe_error(e)} (the code was refused after a wrong secret (6a))")
        info = c.userinfo()
        expect(info.get("email") == "bob@example.com", f"email {info.get('email')!r}")
        return f"tokens; userinfo {info.get('sub')} bob@example.com"

    # 7. An organizational unit: the service account's unit gets Zoom (DESIGN.md §6.4).
    @step("7a", "POST /v1/organizational_unit_authorization_link_tokens")
    def _():
        # pycronofy has no method for it: plain HTTP, the client secret as Bearer.
        r = requests.post(
            f"{base}/v1/organizational_unit_authorization_link_tokens",
            headers={"Authorization": f"Bearer {client_secret}"},
            json={"service_account_id": ctx["ser"]},
            timeout=HTTP_TIMEOUT,
        )
        expect(r.status_code == 200, f"answered {r.status_code}: {r.text[:200]}")
        token = ((r.json().get("organizational_unit_authorization_link_token") or {}).get("ou_link_token"))
        expect(isinstance(token, str) and token, f"no organizational_unit_authorization_link_token.ou_link_token in {r.text[:200]}")
        ctx["ou_link_token"] = token
        return f"200, ou_link_token for {ctx['ser']}"

    @step("7b", "browser: unit consent (conferencing zoom_enterprise)")
    def _():
        ctx["unit_code"], note = unit_conferencing_consent(
            base, client_id, oauth_return, "S-unit", ctx["ou_link_token"], "zoom_enterprise",
            provider_settings.get("SCIMGATE_ZOOM_OAUTH_URL", ""),
        )
        return note

    @step("7c", "browser: GET /organizational_unit_oauth with the used ou_link_token")
    def _():
        expect("unit_code" in ctx, "no unit consent (7b)")
        q = urllib.parse.urlencode(
            [
                ("response_type", "code"), ("client_id", client_id), ("redirect_uri", oauth_return),
                ("state", "S-unit-again"), ("scope", "organizational_unit_use_integrations"),
                ("capabilities[]", "conferencing"), ("conferencing_provider_name", "zoom_enterprise"),
                ("ou_link_token", ctx["ou_link_token"]),
            ]
        )
        r = requests.get(f"{base}/organizational_unit_oauth?{q}", allow_redirects=False, timeout=HTTP_TIMEOUT)
        expect(400 <= r.status_code < 500 and "Location" not in r.headers, f"answered {r.status_code}, Location {r.headers.get('Location')!r}")
        expect("html" in r.headers.get("Content-Type", ""), f"Content-Type {r.headers.get('Content-Type')!r}")
        return f"{r.status_code} HTML page, no Location (link tokens are single use)"

    unit = pycronofy.Client(client_id=client_id, client_secret=client_secret)

    @step("7d", "get_authorization_from_code(unit code, redirect_uri)")
    def _():
        expect("unit_code" in ctx, "no unit consent (7b)")
        tokens = unit.get_authorization_from_code(ctx["unit_code"], redirect_uri=oauth_return)
        for k in ("access_token", "refresh_token", "token_expiration"):
            expect(tokens.get(k), f"no {k} in {tokens}")
        raw = last_response()
        body = raw.json()
        ou = body.get("organizational_unit_id")
        expect(isinstance(ou, str) and ou.startswith("ou_"), f"organizational_unit_id {ou!r}")
        expect(body.get("sub") == ou, f"sub {body.get('sub')!r}, expected the organizational_unit_id {ou}")
        expect(body.get("scope") == "organizational_unit_use_integrations", f"scope {body.get('scope')!r}")
        expect(body.get("token_type") == "bearer", f"token_type {body.get('token_type')!r}")
        expect(isinstance(body.get("expires_in"), int), f"expires_in {body.get('expires_in')!r}")
        expect("no-store" in raw.headers.get("Cache-Control", ""), f"Cache-Control {raw.headers.get('Cache-Control')!r}")
        ctx["ou"] = ou
        ctx["unit_tokens"] = tokens
        return f"sub = organizational_unit_id = {ou}, scope organizational_unit_use_integrations, expires_in {body['expires_in']}"

    @step("7e", "refresh_authorization() as the unit")
    def _():
        expect("unit_tokens" in ctx, "no unit tokens (7d)")
        old = ctx["unit_tokens"]
        tokens = unit.refresh_authorization()
        expect(tokens["access_token"] and tokens["access_token"] != old["access_token"], "the access token did not change")
        expect(tokens["refresh_token"] and tokens["refresh_token"] != old["refresh_token"], "the refresh token did not rotate")
        body = last_response().json()
        expect(body.get("token_type") == "bearer" and isinstance(body.get("expires_in"), int), f"response {sorted(body)}")
        for k in ("sub", "organizational_unit_id"):
            expect(body.get(k, ctx["ou"]) == ctx["ou"], f"{k} {body.get(k)!r}, expected {ctx['ou']}")
        expect(body.get("scope", "organizational_unit_use_integrations") == "organizational_unit_use_integrations", f"scope {body.get('scope')!r}")
        ctx["unit_refreshed"] = tokens
        return f"new access and refresh tokens, expires_in {body['expires_in']}"

    # 8. alice again through the service account: now with the unit's Zoom profile (§6.5).
    cb_unit = f"{callbacks.base}/cb/alice-unit"

    @step("8a", "authorize_with_service_account(alice@example.com) after the unit joined Zoom")
    def _():
        sa.authorize_with_service_account("alice@example.com", scope, cb_unit, state="S-alice-unit")
        status = last_response().status_code
        expect(status == 202, f"answered {status}")
        path = urllib.parse.urlsplit(cb_unit).path
        got = callbacks.wait_for([path], CALLBACK_WAIT)
        expect(path in got, f"202, but no callback at {path} within {CALLBACK_WAIT:.0f} s")
        headers, body = got[path]
        h = {k.lower(): v for k, v in headers.items()}
        expect(sa.hmac_valid(h.get("cronofy-hmac-sha256"), body.decode("utf-8")), "hmac_valid is False")
        a = json.loads(body)["authorization"]
        expect(a.get("code") and a.get("state") == "S-alice-unit", f"callback {a}")
        ctx["alice_unit_code"] = a["code"]
        return "202; signed callback with code and state"

    alice3 = pycronofy.Client(client_id=client_id, client_secret=client_secret)

    @step("8b", "get_authorization_from_code(alice code, redirect_uri=callback_url)")
    def _():
        alice3.get_authorization_from_code(ctx["alice_unit_code"], redirect_uri=cb_unit)
        acc = last_response().json().get("account_id")
        expect(acc == ctx.get("alice_acc"), f"account {acc!r}, expected alice's {ctx.get('alice_acc')!r} (4a)")
        return f"same {acc}"

    @step("8c", "userinfo() as alice: cronofy.data.conferencing_profiles")
    def _():
        info = alice3.userinfo()
        expect(info.get("sub") == ctx.get("alice_acc"), f"sub {info.get('sub')!r}")
        data = info.get("cronofy.data") or {}
        profiles = data.get("profiles") or []
        expect(profiles and profiles[0].get("provider_name") == "google", f"profiles {profiles}")
        conf = data.get("conferencing_profiles")
        expect(isinstance(conf, list) and len(conf) == 1, f"conferencing_profiles {conf!r}, expected one")
        p = conf[0]
        expect(p.get("provider_name") == "zoom_enterprise", f"provider_name {p.get('provider_name')!r}")
        expect(str(p.get("profile_id", "")).startswith("cnf_"), f"profile_id {p.get('profile_id')!r}")
        expect(p.get("profile_name") == "alice@example.com", f"profile_name {p.get('profile_name')!r}")
        expect(p.get("profile_connected") is True, f"profile_connected {p.get('profile_connected')!r}")
        return f"profiles[0] google; conferencing_profiles [zoom_enterprise {p['profile_id']} alice@example.com connected]"

    # 9. The unit's authorization revoked.
    @step("9a", "revoke_authorization() as the unit")
    def _():
        expect("unit_refreshed" in ctx, "no refreshed unit tokens (7e)")
        unit.revoke_authorization()
        status = last_response().status_code
        expect(status == 200, f"answered {status}")
        return "200"

    @step("9b", "refresh_authorization() with the unit's revoked refresh token")
    def _():
        expect("unit_refreshed" in ctx, "no refreshed unit tokens (7e)")
        stale = pycronofy.Client(client_id=client_id, client_secret=client_secret, refresh_token=ctx["unit_refreshed"]["refresh_token"])
        return expect_request_error(stale.refresh_authorization, 400, "invalid_grant")

    # 10. Refresh-token reuse revokes the family.
    @step("10a", "refresh_authorization() with the pre-rotation refresh token")
    def _():
        old = pycronofy.Client(client_id=client_id, client_secret=client_secret, refresh_token=ctx["sa_tokens"]["refresh_token"])
        return expect_request_error(old.refresh_authorization, 400, "invalid_grant")

    @step("10b", "refresh_authorization() with the rotated refresh token after reuse")
    def _():
        return expect_request_error(sa.refresh_authorization, 400, "invalid_grant") + " (family revoked)"

    @step("10c", "userinfo() with the service account's access token after reuse")
    def _():
        return expect_request_error(sa.userinfo, 401)



def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("SCIMGATE_BIN", "target/debug/scimgate"))
    ap.add_argument("--database-url", default=os.environ.get("PYCRONOFY_DATABASE_URL"),
                    help="default: a fresh SQLite file; a postgres:// URL without search_path gets a fresh schema")
    ap.add_argument("--quiet", action="store_true", help="on success print only the version and the count")
    args = ap.parse_args()

    binary = os.path.realpath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"no scimgate binary at {binary}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = tempfile.mkdtemp(prefix="scimgate-pycronofy-")
    procs = Processes(workdir)
    checks = Checks()
    callbacks = None
    drop = lambda: None  # noqa: E731
    backend = "sqlite"
    error = None
    try:
        url = args.database_url or f"sqlite://{workdir}/scimgate.db"
        backend = "postgres" if url.startswith("postgres") else "sqlite"
        url, drop = prepare_database(url)
        api_key = "pycronofy-" + secrets.token_hex(8)
        provider_settings = start_dev_providers(procs, binary, workdir)
        passed = dict(provider_settings)
        base = start_gateway(procs, binary, workdir, url, passed, api_key)
        callbacks = Callbacks()
        run_scenario(checks, base, api_key, callbacks, provider_settings)
        late = sorted(set(provider_settings) - set(passed))
        if late:
            error = f"dev-providers printed {late} after the gateway had started without them"
        elif not checks.rows:
            error = "no check ran"
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"
    except BaseException:
        error = "interrupted"
        raise
    finally:
        if callbacks is not None:
            callbacks.close()
        procs.stop_all()
        drop()
        report(checks, error, procs, backend, args.quiet)
        shutil.rmtree(workdir, ignore_errors=True)
    failed = len(checks.failed) + (1 if error else 0)
    return 1 if failed else 0


def report(checks, error, procs, backend, quiet):
    failed = len(checks.failed) + (1 if error else 0)
    passed = len(checks.rows) - len(checks.failed)
    version = pycronofy.__version__
    if failed or not quiet:
        if checks.rows:
            print(checks.table())
        if error:
            print(f"setup failed: {error}")
        if failed:
            print(procs.logs())
    print(f"pycronofy {version} against scimgate ({backend})")
    print(f"pycronofy: {passed} passed, {failed} failed")


if __name__ == "__main__":
    sys.exit(main())
