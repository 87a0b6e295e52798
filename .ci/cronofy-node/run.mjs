#!/usr/bin/env node
// Wire compatibility of scimgate's Enterprise Connect OAuth server with Cronofy's own Node
// SDK, the npm package `cronofy` (pinned in package.json), as .ci/pycronofy does for
// pycronofy.
//
// Starts `scimgate dev-providers` (fake Google and Microsoft) and `scimgate` on free
// loopback ports, registers an application (admin API), consents as a Google Workspace
// admin would in a browser, then drives the SDK's Enterprise Connect calls against the
// gateway: requestAccessToken, refreshAccessToken, authorizeWithServiceAccount (single and
// the batch body) with signed callbacks, hmacValid, userInfo and revokeAuthorization.
//
//     node run.mjs --binary target/debug/scimgate [--database-url URL] [--quiet]
//
// --database-url defaults to a fresh SQLite file. A postgres:// URL without a search_path
// gets a fresh schema (created and dropped with psql). Exits 1 on any failed check.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);
const Cronofy = require('cronofy');
const CRONOFY_VERSION = JSON.parse(
  fs.readFileSync(path.join(path.dirname(require.resolve('cronofy')), '..', 'package.json'), 'utf8')
).version;
// The very axios instance the SDK sends with (resolved from the SDK's own folder), to see
// each response's status and headers: the SDK hands back only the body.
const axios = createRequire(require.resolve('cronofy'))('axios');

const HTTP_TIMEOUT_MS = 10_000;
const CALLBACK_WAIT_MS = 30_000;

axios.defaults.timeout = HTTP_TIMEOUT_MS;
axios.defaults.proxy = false; // loopback only, whatever HTTP(S)_PROXY says

const RESPONSES = [];
const keep = (r) => {
  RESPONSES.push(r);
  RESPONSES.splice(0, Math.max(0, RESPONSES.length - 20));
};
axios.interceptors.response.use(
  (r) => { keep(r); return r; },
  (e) => { if (e.response) keep(e.response); return Promise.reject(e); }
);
const lastResponse = () => RESPONSES[RESPONSES.length - 1];

// ---------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const args = {
    binary: process.env.SCIMGATE_BIN || 'target/debug/scimgate',
    databaseUrl: process.env.CRONOFY_NODE_DATABASE_URL || null,
    quiet: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--binary') args.binary = value();
    else if (a.startsWith('--binary=')) args.binary = a.slice(9);
    else if (a === '--database-url') args.databaseUrl = value();
    else if (a.startsWith('--database-url=')) args.databaseUrl = a.slice(15);
    else if (a === '--quiet') args.quiet = true;
    else if (a === '-h' || a === '--help') usage(null);
    else usage(`unknown argument ${a}`);
  }
  return args;
}

function usage(problem) {
  const text =
    'usage: node run.mjs [--binary PATH] [--database-url URL] [--quiet]\n' +
    '  --binary        the scimgate binary (default target/debug/scimgate, or $SCIMGATE_BIN)\n' +
    '  --database-url  default: a fresh SQLite file; a postgres:// URL without search_path\n' +
    '                  gets a fresh schema\n' +
    '  --quiet         on success print only the version and the count\n';
  if (problem) {
    process.stderr.write(`${problem}\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------
// Results

class StepFailed extends Error {}

function expect(cond, message) {
  if (!cond) throw new StepFailed(message);
}

class Checks {
  constructor() { this.rows = []; } // [step, call, ok, detail]
  record(step, call, ok, detail) { this.rows.push([step, call, !!ok, detail]); return ok; }
  get failed() { return this.rows.filter((r) => !r[2]); }
  table() {
    const wStep = Math.max(4, ...this.rows.map((r) => r[0].length));
    const wCall = Math.max(8, ...this.rows.map((r) => r[1].length));
    const lines = [`${'step'.padEnd(wStep)}  ${'SDK call'.padEnd(wCall)}  result`];
    lines.push(`${'-'.repeat(wStep)}  ${'-'.repeat(wCall)}  ------`);
    for (const [step, call, ok, detail] of this.rows) {
      lines.push(`${step.padEnd(wStep)}  ${call.padEnd(wCall)}  ${ok ? 'ok  ' : 'FAIL'}  ${detail}`);
    }
    return lines.join('\n');
  }
}

const short = (v, n = 200) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > n ? `${s.slice(0, n)}…` : s;
};

function describeError(e) {
  if (e instanceof StepFailed) return e.message;
  if (e && e.statusCode) return `SDK error ${e.statusCode}: ${short(e.error && e.error.entity)}`;
  return `${(e && e.name) || 'Error'}: ${(e && e.message) || e}`;
}

// Runs an SDK call that must reject with HTTP `status` (and the RFC 6749 `error` code in
// the JSON body when given). The SDK rejects with an Error carrying `statusCode` and
// `error.entity` (the parsed body).
async function expectRejection(fn, status, error) {
  let result;
  try {
    result = await fn();
  } catch (e) {
    if (!e || e.statusCode === undefined) throw e;
    expect(e.statusCode === status, `rejected with ${e.statusCode}, expected ${status}: ${short(e.error && e.error.entity)}`);
    if (error !== undefined) {
      const body = e.error && e.error.entity;
      expect(body && typeof body === 'object', `status ${e.statusCode} but the body is not JSON: ${short(body)}`);
      expect(body.error === error, `status ${e.statusCode} with body ${short(body)}, expected error ${JSON.stringify(error)}`);
      return `rejected ${e.statusCode} {"error": "${error}"}`;
    }
    return `rejected ${e.statusCode}`;
  }
  throw new StepFailed(`resolved (${short(result)}), expected a ${status} rejection`);
}

// ---------------------------------------------------------------------------------------
// Processes

class Processes {
  constructor() { this.procs = []; } // {name, child, logs: {out: [], err: []}}

  start(name, argv, env, onStdoutLine) {
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = { name, child, exited: false, logs: { out: '', err: '' } };
    child.on('exit', () => { entry.exited = true; });
    child.on('error', (e) => { entry.exited = true; entry.logs.err += `spawn error: ${e.message}\n`; });
    let pending = '';
    child.stdout.on('data', (chunk) => {
      const text = chunk.toString('utf8');
      entry.logs.out = (entry.logs.out + text).slice(-200_000);
      if (onStdoutLine) {
        pending += text;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          onStdoutLine(pending.slice(0, nl).trim());
          pending = pending.slice(nl + 1);
        }
      }
    });
    child.stderr.on('data', (chunk) => {
      entry.logs.err = (entry.logs.err + chunk.toString('utf8')).slice(-200_000);
    });
    this.procs.push(entry);
    return entry;
  }

  async stopAll() {
    const live = this.procs.filter((p) => !p.exited).reverse();
    for (const p of live) p.child.kill('SIGINT');
    const deadline = Date.now() + 10_000;
    for (const p of live) {
      while (!p.exited && Date.now() < deadline) await sleep(50);
      if (!p.exited) {
        p.child.kill('SIGKILL');
        while (!p.exited) await sleep(20);
      }
    }
  }

  killAllNow() {
    for (const p of this.procs) if (!p.exited) p.child.kill('SIGKILL');
  }

  logs(tail = 40) {
    const out = [];
    for (const p of this.procs) {
      for (const ext of ['out', 'err']) {
        // eslint-disable-next-line no-control-regex
        const lines = p.logs[ext].replace(/\x1b\[[0-9;]*m/g, '').split('\n').filter((l) => l !== '').slice(-tail);
        if (lines.length) {
          out.push(`--- ${p.name}.${ext} (last ${lines.length} lines)`);
          out.push(...lines);
        }
      }
    }
    return out.join('\n');
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function baseEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SCIMGATE_')) env[k] = v;
  if (env.RUST_BACKTRACE === undefined) env.RUST_BACKTRACE = '1';
  return env;
}

async function startDevProviders(procs, binary, workdir) {
  const wanted = [
    'SCIMGATE_GOOGLE_SERVICE_ACCOUNT_KEY',
    'SCIMGATE_GOOGLE_ADMIN_URL',
    'SCIMGATE_MICROSOFT_CLIENT_ID',
    'SCIMGATE_MICROSOFT_CLIENT_SECRET',
    'SCIMGATE_MICROSOFT_LOGIN_URL',
    'SCIMGATE_MICROSOFT_GRAPH_URL',
  ];
  const settings = {};
  const p = procs.start(
    'dev-providers',
    [binary, 'dev-providers', '--listen', '127.0.0.1:0', '--key-file', path.join(workdir, 'google-key.json')],
    baseEnv(),
    (line) => {
      const m = /^(SCIMGATE_[A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) settings[m[1]] = m[2];
    }
  );
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (wanted.every((k) => k in settings)) return Object.fromEntries(wanted.map((k) => [k, settings[k]]));
    if (p.exited) break;
    await sleep(50);
  }
  throw new Error(`dev-providers printed no settings (exit status ${p.child.exitCode})`);
}

async function httpStatus(url) {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}

async function startGateway(procs, binary, workdir, databaseUrl, providerSettings, apiKey) {
  const env = {
    ...baseEnv(),
    ...providerSettings,
    SCIMGATE_LISTEN: '127.0.0.1:0',
    SCIMGATE_DATABASE_URL: databaseUrl,
    SCIMGATE_API_KEYS: apiKey,
    SCIMGATE_ENCRYPTION_KEY: crypto.randomBytes(32).toString('base64'),
    SCIMGATE_WEBHOOK_ALLOW_PRIVATE: 'true',
    SCIMGATE_ADMIN_KEY_FILE: path.join(workdir, 'admin-key'),
    SCIMGATE_ENCRYPTION_KEY_FILE: path.join(workdir, 'encryption-key'),
  };
  let base = null;
  const p = procs.start('scimgate', [binary], env, (line) => {
    const m = /^listening on (http:\/\/\S+)/.exec(line);
    if (m && !base) base = m[1].replace(/\/+$/, '');
  });
  const deadline = Date.now() + 120_000;
  while (!base && Date.now() < deadline) {
    if (p.exited) throw new Error(`scimgate exited with status ${p.child.exitCode}`);
    await sleep(100);
  }
  if (!base) throw new Error("scimgate did not print 'listening on' within 120 s");
  while (Date.now() < deadline) {
    if (p.exited) throw new Error(`scimgate exited with status ${p.child.exitCode}`);
    if ((await httpStatus(`${base}/healthz`)) === 200 && (await httpStatus(`${base}/readyz`)) === 200) return base;
    await sleep(200);
  }
  throw new Error('scimgate never answered /healthz and /readyz with 200');
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: a fresh schema per run

function psql(url, sqls, check = true) {
  const argv = [url, '-Atq'];
  for (const s of sqls) argv.push('-c', s);
  const r = spawnSync('psql', argv, {
    env: { ...process.env, PGOPTIONS: '--client-min-messages=warning' },
    encoding: 'utf8',
  });
  if (check && (r.error || r.status !== 0)) {
    throw new Error(`psql failed (${r.error ? r.error.message : `status ${r.status}`}): ${(r.stderr || '').trim()}`);
  }
  return (r.stdout || '').trim();
}

// Returns [url to use, cleanup]. For PostgreSQL, the schema named by the URL's
// `options=-csearch_path=...` (or a new `cronofy_node_<random>` one, added to the URL) is
// created with psql when missing, and then dropped at the end.
function prepareDatabase(url) {
  if (!/^postgres(ql)?:\/\//.test(url)) return [url, () => {}];
  const m = /search_path=([A-Za-z0-9_]+)/.exec(decodeURIComponent(url));
  let schema;
  if (m) {
    schema = m[1];
  } else {
    schema = `cronofy_node_${crypto.randomBytes(6).toString('hex')}`;
    url = `${url}${url.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`;
  }
  if (psql(url, [`SELECT 1 FROM pg_namespace WHERE nspname = '${schema}'`]) === '1') return [url, () => {}];
  psql(url, [`CREATE SCHEMA ${schema}`]);
  // The URL's own `options` wins over PGOPTIONS: silence the cascade's NOTICE here.
  return [url, () => psql(url, ['SET client_min_messages = warning', `DROP SCHEMA IF EXISTS ${schema} CASCADE`], false)];
}

// ---------------------------------------------------------------------------------------
// Callback receiver: a loopback HTTP server that records every POST by path, raw body kept.

class Callbacks {
  constructor() {
    this.received = new Map(); // path -> [{headers, body: Buffer}]
    this.waiters = [];
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST') {
          res.writeHead(404, { 'Content-Length': '0' }).end();
          return;
        }
        const list = this.received.get(req.url) || [];
        list.push({ headers: req.headers, body: Buffer.concat(chunks) });
        this.received.set(req.url, list);
        res.writeHead(200, { 'Content-Length': '0' }).end();
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  async listen() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', resolve);
    });
    this.base = `http://127.0.0.1:${this.server.address().port}`;
  }

  async waitFor(paths, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!paths.every((p) => this.received.has(p)) && Date.now() < deadline) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
    const got = {};
    for (const p of paths) if (this.received.has(p)) got[p] = this.received.get(p)[0];
    return got;
  }

  close() {
    this.server.closeAllConnections?.();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------
// The admin's consent, as a browser would do it (fetch, a cookie jar, the page's form)

const decodeEntities = (s) =>
  s.replace(/&(#x[0-9a-f]+|#[0-9]+|quot|amp|lt|gt|apos|#39);/gi, (_, e) => {
    const l = e.toLowerCase();
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    if (l.startsWith('#')) return String.fromCodePoint(parseInt(l.slice(1), 10));
    return { quot: '"', amp: '&', lt: '<', gt: '>', apos: "'" }[l];
  });

function attributes(tag) {
  const out = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  let m;
  while ((m = re.exec(tag))) out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  return out;
}

// [[action, {name: value}]] for every <form> of the page.
function forms(html) {
  const out = [];
  const re = /<form\b([^>]*)>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = re.exec(html))) {
    const fields = {};
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1]);
      if (a.name) fields[a.name] = a.value ?? '';
    }
    out.push([attributes(m[1]).action || '', fields]);
  }
  return out;
}

class Browser {
  constructor() { this.cookies = new Map(); }

  async request(url, init = {}) {
    const headers = { ...(init.headers || {}) };
    if (this.cookies.size) headers.Cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const r = await fetch(url, { ...init, headers, redirect: 'manual', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
    for (const c of r.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      if (eq > 0) this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    return { status: r.status, headers: r.headers, text: await r.text() };
  }
}

// Returns the code the admin's browser brings back to redirectUri (the final redirect is
// read, never followed).
async function googleConsent(base, clientId, redirectUri, state) {
  const b = new Browser();
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: 'service_account/accounts/manage',
    delegated_scope: 'read_write',
    state,
    provider_name: 'google',
  });
  let r = await b.request(`${base}/enterprise_connect/oauth/authorize?${q}`);
  expect([302, 303].includes(r.status), `authorize answered ${r.status}, expected a redirect: ${short(r.text)}`);
  const consentUrl = new URL(r.headers.get('location') || '', `${base}/`).toString();
  expect(consentUrl.includes('/enterprise_connect/oauth/consent'), `authorize redirected to ${consentUrl}`);
  r = await b.request(consentUrl);
  expect(r.status === 200, `consent page answered ${r.status}: ${short(r.text)}`);
  const all = forms(r.text);
  const form = all.find(([action]) => action.endsWith('/enterprise_connect/oauth/google'));
  expect(form, `no Google form on the consent page (forms: ${JSON.stringify(all.map((f) => f[0]))})`);
  const [action, fields] = form;
  expect('flow' in fields && 'csrf' in fields, `the Google form lacks flow/csrf: ${Object.keys(fields).sort()}`);
  Object.assign(fields, { domain: 'example.com', admin_email: 'admin@example.com' });
  r = await b.request(new URL(action, consentUrl).toString(), {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  expect([302, 303].includes(r.status), `the Google form answered ${r.status}: ${short(r.text, 300)}`);
  const location = r.headers.get('location') || '';
  expect(location.startsWith(`${redirectUri}?`), `consent redirected to ${JSON.stringify(location)}, not to ${redirectUri}`);
  const params = new URL(location).searchParams;
  expect(params.getAll('state').length === 1 && params.get('state') === state, `state came back as ${JSON.stringify(params.getAll('state'))}`);
  expect(params.get('code'), `no code in ${location}`);
  return params.get('code');
}

// ---------------------------------------------------------------------------------------
// The scenario

// A client of the SDK pointed at the gateway. The SDK builds every URL from `urls.api`
// (set in its constructor from `data_center`); `urls.app` is set too, should a later
// version read it.
function sdkClient(base, config) {
  const c = new Cronofy(config);
  c.urls.api = base;
  c.urls.app = base;
  return c;
}

const hmacOf = (body, secret) => crypto.createHmac('sha256', secret).update(body).digest('base64');

function checkTokenResponse(raw) {
  expect(raw, 'no HTTP response seen');
  const body = raw.data;
  for (const k of ['access_token', 'refresh_token']) expect(body && body[k], `no ${k} in ${short(body)}`);
  expect(body.token_type === 'bearer', `token_type ${JSON.stringify(body.token_type)}`);
  expect(Number.isInteger(body.expires_in), `expires_in ${JSON.stringify(body.expires_in)}`);
  const cc = raw.headers['cache-control'] || '';
  expect(cc.includes('no-store'), `Cache-Control ${JSON.stringify(cc)}`);
  return body;
}

async function runScenario(checks, base, apiKey, callbacks) {
  const ctx = {};
  const step = async (name, call, fn) => {
    try {
      checks.record(name, call, true, (await fn()) || '');
      return true;
    } catch (e) {
      checks.record(name, call, false, describeError(e));
      return false;
    }
  };
  const oauthReturn = `${callbacks.base}/oauth-return`;

  // 0. Application and consent (plain HTTP: the SDK has no Enterprise Connect URL builder).
  await step('0a', 'POST /api/v1/applications (admin API)', async () => {
    const r = await fetch(`${base}/api/v1/applications`, {
      method: 'POST',
      headers: { Authorization: `Api-Key ${apiKey}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'cronofy (npm) wire test', redirect_uris: [oauthReturn] }),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    const text = await r.text();
    expect(r.status === 201, `answered ${r.status}: ${short(text)}`);
    const data = JSON.parse(text).data;
    for (const k of ['id', 'client_id', 'client_secret', 'name', 'redirect_uris']) expect(k in data, `no ${k} in ${Object.keys(data).sort()}`);
    ctx.clientId = data.client_id;
    ctx.clientSecret = data.client_secret;
    return `201, client_id ${data.client_id}`;
  });
  if (!ctx.clientId) return;
  const { clientId, clientSecret } = ctx;
  const newClient = (extra = {}) => sdkClient(base, { client_id: clientId, client_secret: clientSecret, ...extra });

  await step('0b', 'browser: Enterprise Connect consent (google)', async () => {
    ctx.saCode = await googleConsent(base, clientId, oauthReturn, 'S-consent');
    return '303 -> consent form -> 303 redirect_uri?code&state';
  });
  if (!ctx.saCode) return;

  const sa = newClient();

  // 1. The service account's tokens.
  await step('1', "requestAccessToken({code, redirect_uri, grant_type:'authorization_code'})", async () => {
    const tokens = await sa.requestAccessToken({
      client_id: clientId,
      client_secret: clientSecret,
      grant_type: 'authorization_code',
      code: ctx.saCode,
      redirect_uri: oauthReturn,
    });
    const body = checkTokenResponse(lastResponse());
    expect(tokens.access_token === body.access_token, 'the SDK resolved with another body');
    expect(String(body.service_account_id || '').startsWith('ser_'), `service_account_id ${JSON.stringify(body.service_account_id)}`);
    expect(sa.config.access_token === body.access_token && sa.config.refresh_token === body.refresh_token, 'the SDK did not keep the tokens');
    ctx.ser = body.service_account_id;
    ctx.saTokens = body;
    return `tokens, expires_in ${body.expires_in}, ${body.service_account_id}, scope ${JSON.stringify(body.scope)}`;
  });
  if (!ctx.saTokens) return;

  // 2. Refresh.
  await step('2', 'refreshAccessToken()', async () => {
    const old = ctx.saTokens;
    const tokens = await sa.refreshAccessToken();
    const body = checkTokenResponse(lastResponse());
    expect(tokens.access_token && tokens.access_token !== old.access_token, 'the access token did not change');
    expect(tokens.refresh_token && tokens.refresh_token !== old.refresh_token, 'the refresh token did not rotate');
    expect(sa.config.refresh_token === tokens.refresh_token, 'the SDK did not keep the new refresh token');
    return `new access and refresh tokens, expires_in ${body.expires_in}`;
  });

  await step('2a', 'refreshAccessToken() with a wrong client_secret', async () => {
    const bad = sdkClient(base, { client_id: clientId, client_secret: `${clientSecret}x`, refresh_token: sa.config.refresh_token });
    return expectRejection(() => bad.refreshAccessToken(), 401, 'invalid_client');
  });

  await step('2b', 'refreshAccessToken() again (2a neither rotated nor revoked)', async () => {
    const before = sa.config.refresh_token;
    const tokens = await sa.refreshAccessToken();
    expect(tokens.refresh_token && tokens.refresh_token !== before, 'the refresh token did not rotate');
    return 'new access and refresh tokens';
  });

  await step('2c', "userInfo() with the service account's new token", async () => {
    const info = await sa.userInfo();
    expect(info.sub === ctx.ser, `sub ${JSON.stringify(info.sub)}, expected ${ctx.ser}`);
    return `sub ${info.sub}, cronofy.type ${JSON.stringify(info['cronofy.type'])}`;
  });

  // 3. Service-account authorizations and their signed callbacks.
  const scope = 'read_write';
  const cb = Object.fromEntries(['alice', 'nobody', 'bob', 'alice2', 'bob2'].map((n) => [n, `${callbacks.base}/cb/${n}`]));

  await step('3a', 'authorizeWithServiceAccount({email: alice@example.com, scope, callback_url, state})', async () => {
    await sa.authorizeWithServiceAccount({ email: 'alice@example.com', scope, callback_url: cb.alice, state: 'S-alice' });
    const status = lastResponse() && lastResponse().status;
    expect(status === 202, `answered ${status}`);
    return '202';
  });

  await step('3b', 'authorizeWithServiceAccount({email: nobody@example.com, ...})', async () => {
    await sa.authorizeWithServiceAccount({ email: 'nobody@example.com', scope, callback_url: cb.nobody, state: 'S-nobody' });
    const status = lastResponse() && lastResponse().status;
    expect(status === 202, `answered ${status}`);
    return '202';
  });

  // The SDK has no batch method; authorizeWithServiceAccount posts its options as they are,
  // so the documented batch body goes through the same call.
  await step('3c', 'authorizeWithServiceAccount({service_account_authorizations: [bob, alice, bob], state})', async () => {
    await sa.authorizeWithServiceAccount({
      service_account_authorizations: [
        { email: 'bob@example.com', scope, callback_url: cb.bob, state: 'S-bob' },
        { email: 'alice@example.com', scope, callback_url: cb.alice2 },
        { email: 'bob@example.com', scope, callback_url: cb.bob2, state: 'S-bob2' },
      ],
      state: 'S-batch',
    });
    const status = lastResponse() && lastResponse().status;
    expect(status === 202, `answered ${status}`);
    return '202';
  });

  await step('3d', `callbacks arrive (<= ${CALLBACK_WAIT_MS / 1000} s)`, async () => {
    const paths = Object.values(cb).map((u) => new URL(u).pathname);
    const got = await callbacks.waitFor(paths, CALLBACK_WAIT_MS);
    const missing = paths.filter((p) => !(p in got));
    expect(!missing.length, `no callback at ${missing} within ${CALLBACK_WAIT_MS / 1000} s`);
    ctx.callbacks = Object.fromEntries(Object.entries(cb).map(([n, u]) => [n, got[new URL(u).pathname]]));
    return `${paths.length} callbacks`;
  });
  if (!ctx.callbacks) return;

  await step('3e', 'Cronofy-HMAC-SHA256 = base64 HMAC-SHA256(body, secret); hmacValid({hmac, body})', async () => {
    for (const [name, { headers, body }] of Object.entries(ctx.callbacks)) {
      const header = headers['cronofy-hmac-sha256'];
      expect(header, `${name}: no Cronofy-HMAC-SHA256 header`);
      expect(header.split(',').includes(hmacOf(body, clientSecret)), `${name}: header ${header} is not base64 HMAC-SHA256(body, client_secret)`);
      const text = body.toString('utf8');
      expect(sa.hmacValid({ hmac: header, body: text }) === true, `${name}: hmacValid is false`);
      expect(sa.hmacValid({ hmac: header, body: `${text} ` }) === false, `${name}: hmacValid accepts a changed body`);
    }
    return `valid for all ${Object.keys(ctx.callbacks).length}, invalid for a changed body`;
  });

  const authorization = (name) => JSON.parse(ctx.callbacks[name].body.toString('utf8')).authorization;

  await step('3f', 'callback bodies: code/state, not_found', async () => {
    const a = authorization('alice');
    expect(a && a.code && a.state === 'S-alice', `alice: ${short(a)}`);
    const n = authorization('nobody');
    expect(n && n.error === 'not_found' && n.state === 'S-nobody' && !('code' in n), `nobody: ${short(n)}`);
    const b = authorization('bob');
    expect(b && b.code && b.state === 'S-bob', `bob: ${short(b)}`);
    const a2 = authorization('alice2');
    expect(a2 && a2.code && a2.state === 'S-batch', `alice again (batch state): ${short(a2)}`);
    return 'alice/bob: code+state; nobody: error not_found; batch state applied';
  });

  // 4. The account's tokens from the delegated code, and UserInfo.
  const alice = newClient();

  await step('4a', 'requestAccessToken({code: alice, redirect_uri: callback_url})', async () => {
    await alice.requestAccessToken({ grant_type: 'authorization_code', code: authorization('alice').code, redirect_uri: cb.alice });
    const body = checkTokenResponse(lastResponse());
    expect(String(body.account_id || '').startsWith('acc_') && body.sub === body.account_id, `account_id/sub ${JSON.stringify(body.account_id)}/${JSON.stringify(body.sub)}`);
    const lp = body.linking_profile || {};
    expect(lp.provider_name === 'google' && lp.profile_name === 'alice@example.com', `linking_profile ${short(lp)}`);
    ctx.aliceAcc = body.account_id;
    ctx.aliceTokens = body;
    return `${body.account_id}, expires_in ${body.expires_in}, linking_profile google alice@example.com`;
  });

  await step('4b', 'userInfo() as alice', async () => {
    const info = await alice.userInfo();
    expect(String(info.sub || '').startsWith('acc_'), `sub ${JSON.stringify(info.sub)}`);
    expect(info.sub === ctx.aliceAcc, `sub ${info.sub} is not the token's account ${ctx.aliceAcc}`);
    expect(info.email === 'alice@example.com', `email ${JSON.stringify(info.email)}`);
    expect(info['cronofy.type'] === 'account', `cronofy.type ${JSON.stringify(info['cronofy.type'])}`);
    const profiles = (info['cronofy.data'] || {}).profiles || [];
    expect(profiles.length, `no cronofy.data.profiles in ${short(info)}`);
    expect(profiles[0].provider_name === 'google', `profiles[0].provider_name ${JSON.stringify(profiles[0].provider_name)}`);
    expect(profiles[0].profile_connected === true, `profiles[0].profile_connected ${JSON.stringify(profiles[0].profile_connected)}`);
    return `sub ${info.sub}, email alice@example.com, profiles[0] google connected`;
  });

  const alice2 = newClient();

  await step('4c', "requestAccessToken(alice's 2nd code) -> same account", async () => {
    await alice2.requestAccessToken({ code: authorization('alice2').code, redirect_uri: cb.alice2 });
    const acc = lastResponse().data.account_id;
    expect(acc === ctx.aliceAcc, `account ${JSON.stringify(acc)}, expected ${ctx.aliceAcc}`);
    return `same ${acc}`;
  });

  await step('4d', 'requestAccessToken(that code) again', async () => {
    const c = newClient();
    return expectRejection(() => c.requestAccessToken({ code: authorization('alice2').code, redirect_uri: cb.alice2 }), 400, 'invalid_grant');
  });

  await step('4e', 'userInfo() with the tokens of the reused code (RFC 6749 4.1.2)', async () => {
    return `${await expectRejection(() => alice2.userInfo(), 401)} (revoked)`;
  });

  await step('4f', 'requestAccessToken(code, another redirect_uri)', async () => {
    // bob's second code redeemed with bob's first callback URL: a mismatch.
    const c = newClient();
    return expectRejection(() => c.requestAccessToken({ code: authorization('bob2').code, redirect_uri: cb.bob }), 400, 'invalid_grant');
  });

  // 5. Revocation. The SDK posts its options plus client_id, client_secret and its stored
  // refresh_token to /oauth/token/revoke; the Cronofy parameter is `token`, which the
  // caller passes (cronofy/cronofy-node#62).
  await step('5a', 'revokeAuthorization({token: refresh_token}) as alice', async () => {
    expect(ctx.aliceTokens, 'no tokens from 4a');
    await alice.revokeAuthorization({ token: alice.config.refresh_token });
    const status = lastResponse() && lastResponse().status;
    expect(status === 200, `answered ${status}`);
    expect(alice.config.access_token === undefined && alice.config.refresh_token === undefined, 'the SDK kept the tokens');
    return '200; the SDK dropped its tokens';
  });

  await step('5b', 'userInfo() with the revoked access token', async () => {
    expect(ctx.aliceTokens, 'no tokens from 4a');
    const stale = newClient({ access_token: ctx.aliceTokens.access_token });
    return expectRejection(() => stale.userInfo(), 401);
  });

  await step('5c', 'refreshAccessToken() with the revoked refresh token', async () => {
    expect(ctx.aliceTokens, 'no tokens from 4a');
    const stale = newClient({ refresh_token: ctx.aliceTokens.refresh_token });
    return expectRejection(() => stale.refreshAccessToken(), 400, 'invalid_grant');
  });

  // 6. Client authentication.
  await step('6a', 'requestAccessToken(bob code) with a wrong client_secret', async () => {
    const bad = sdkClient(base, { client_id: clientId, client_secret: `${clientSecret}x` });
    return expectRejection(() => bad.requestAccessToken({ code: authorization('bob').code, redirect_uri: cb.bob }), 401, 'invalid_client');
  });

  await step('6b', 'requestAccessToken(bob code) with the right secret', async () => {
    const c = newClient();
    try {
      await c.requestAccessToken({ code: authorization('bob').code, redirect_uri: cb.bob });
    } catch (e) {
      throw new StepFailed(`${describeError(e)} (the code was refused after a wrong secret (6a))`);
    }
    const info = await c.userInfo();
    expect(info.email === 'bob@example.com', `email ${JSON.stringify(info.email)}`);
    return `tokens; userInfo ${info.sub} bob@example.com`;
  });

  // 7. Refresh-token reuse revokes the family.
  await step('7a', 'refreshAccessToken() with the pre-rotation refresh token', async () => {
    const old = newClient({ refresh_token: ctx.saTokens.refresh_token });
    return expectRejection(() => old.refreshAccessToken(), 400, 'invalid_grant');
  });

  await step('7b', 'refreshAccessToken() with the rotated refresh token after reuse', async () => {
    return `${await expectRejection(() => sa.refreshAccessToken(), 400, 'invalid_grant')} (family revoked)`;
  });

  await step('7c', "userInfo() with the service account's access token after reuse", async () => {
    return expectRejection(() => sa.userInfo(), 401);
  });
}

// ---------------------------------------------------------------------------------------

function report(checks, error, procs, backend, quiet) {
  const failed = checks.failed.length + (error ? 1 : 0);
  const passed = checks.rows.length - checks.failed.length;
  if (failed || !quiet) {
    if (checks.rows.length) console.log(checks.table());
    if (error) console.log(`setup failed: ${error}`);
    if (failed) console.log(procs.logs());
  }
  console.log(`cronofy (npm) ${CRONOFY_VERSION} against scimgate (${backend})`);
  console.log(`cronofy (npm) ${CRONOFY_VERSION}: ${passed} passed, ${failed} failed`);
  return failed;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let binary = path.resolve(args.binary);
  try {
    binary = fs.realpathSync(binary);
    fs.accessSync(binary, fs.constants.X_OK);
  } catch {
    process.stderr.write(`no scimgate binary at ${binary}\n`);
    return 2;
  }

  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'scimgate-cronofy-node-'));
  const procs = new Processes();
  const checks = new Checks();
  let callbacks = null;
  let drop = () => {};
  let backend = 'sqlite';
  let error = null;
  const onSignal = (sig) => {
    procs.killAllNow();
    try { drop(); } catch { /* best effort */ }
    fs.rmSync(workdir, { recursive: true, force: true });
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('exit', () => procs.killAllNow());

  try {
    let url = args.databaseUrl || `sqlite://${workdir}/scimgate.db`;
    backend = url.startsWith('postgres') ? 'postgres' : 'sqlite';
    [url, drop] = prepareDatabase(url);
    const apiKey = `cronofy-node-${crypto.randomBytes(8).toString('hex')}`;
    const providerSettings = await startDevProviders(procs, binary, workdir);
    const base = await startGateway(procs, binary, workdir, url, providerSettings, apiKey);
    callbacks = new Callbacks();
    await callbacks.listen();
    await runScenario(checks, base, apiKey, callbacks);
    if (!checks.rows.length) error = 'no check ran';
  } catch (e) {
    error = `${(e && e.name) || 'Error'}: ${(e && e.message) || e}`;
  } finally {
    if (callbacks) await callbacks.close();
    await procs.stopAll();
    try { drop(); } catch (e) { error = error || `dropping the schema: ${e.message}`; }
  }
  const failed = report(checks, error, procs, backend, args.quiet);
  fs.rmSync(workdir, { recursive: true, force: true });
  return failed ? 1 : 0;
}

process.exitCode = await main();
