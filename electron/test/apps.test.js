'use strict';
// Bring your own backend: a FastAPI app from PyPI that nobody here wrote (deeppoker,
// pinned in tests/apps/deeppoker/requirements.txt), frozen by backend/build-bundle
// --asgi with no change to its code, packed, published and signed with peft-release,
// installed by peft-bootstrap, started and supervised by headless.js. Its real HTTP
// routes and its WebSocket answer the launcher's token and refuse everyone else.
//
//   PEFT_TEST_APP_BUNDLE_DIR   folder holding deeppoker/deeppoker (default target/bundles/app-deeppoker;
//                              tests/run-all builds it)

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const paths = require('../lib/paths');
const { need, tmp, Repo, serve, headless, prodEnv } = require('./support');
const ws = require('./wsclient');

const APP_BUNDLE = process.env.PEFT_TEST_APP_BUNDLE_DIR || path.join(paths.REPO_DIR, 'target', 'bundles', 'app-deeppoker');
const APP_ENTRY = `deeppoker/deeppoker${paths.EXE}`;

function needApp(t) {
  if (paths.isExecutable(path.join(APP_BUNDLE, APP_ENTRY))) return true;
  const why = `missing the frozen app ${path.join(APP_BUNDLE, APP_ENTRY)} (backend/build-bundle --asgi deeppoker.server.app:app `
    + '--requirements tests/apps/deeppoker/requirements.txt --variant <os>-<arch>-cpu --out target/bundles/app-deeppoker)';
  if (process.env.PEFT_E2E_REQUIRE === '1') throw new Error(`PEFT_E2E_REQUIRE=1 and ${why}`);
  t.skip(why);
  return false;
}

async function call(url, { method = 'GET', token, body, headers = {} } = {}) {
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

test('a FastAPI app from PyPI: frozen, delivered, launched; HTTP and WebSocket need the token', { timeout: 120000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release') || !needApp(t)) return;
  const root = tmp('peft-app-');
  const repo = new Repo(root).pack('1.0.0', APP_BUNDLE, 'deeppoker/deeppoker').publish();
  const srv = await serve(repo.dir);
  const h = headless(prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') }));
  try {
    const running = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 90000);
    const { url, token } = running;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(token && token.length >= 32);
    const wsUrl = url.replace('http:', 'ws:');

    // /health: added by the wrapper (the app has none), open to anyone on loopback
    const health = await call(`${url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'ok');

    // the app's real routes, with the token
    let r = await call(`${url}/init_game`, { method: 'POST', token, body: { player_count: 2 } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.success, true);
    r = await call(`${url}/start_hand`, { method: 'POST', token });
    assert.equal(r.status, 200, r.text);
    r = await call(`${url}/get_game_state`, { token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.public_info.players.length, 2, r.text);
    assert.equal(r.json.public_info.phase, 'PREFLOP');
    r = await call(`${url}/rooms/room-1`, { token });
    assert.equal(r.status, 200);
    assert.equal(r.json.player_count, 2);

    // ... and without it, a wrong one, a foreign Host or Origin
    for (const [path_, opts] of [['/get_game_state', {}], ['/get_game_state', { token: 'x' + token }],
      ['/init_game', { method: 'POST', body: { player_count: 3 } }], ['/docs', {}]]) {
      r = await call(url + path_, opts);
      assert.equal(r.status, 401, `${path_}: ${r.text}`);
    }
    r = await call(`${url}/get_game_state`, { token, headers: { Origin: 'https://evil.example' } });
    assert.equal(r.status, 403);

    // the WebSocket: the token as subprotocol (what a browser can send), echoed back
    const join = JSON.stringify({ type: 'join', room_id: 'table', player_id: 'alice' });
    const c1 = await ws.connect(`${wsUrl}/ws`, { protocols: [`peft-token.${token}`] });
    assert.equal(c1.status, 101);
    assert.equal(c1.headers['sec-websocket-protocol'], `peft-token.${token}`);
    c1.send(join);
    const state = JSON.parse(await c1.next());
    assert.equal(state.type, 'state', JSON.stringify(state));
    c1.close();

    // ... or as the peft_token query parameter
    const c2 = await ws.connect(`${wsUrl}/ws?peft_token=${encodeURIComponent(token)}`);
    assert.equal(c2.status, 101);
    c2.send(JSON.stringify({ type: 'join', room_id: 'table', player_id: 'bob' }));
    assert.equal(JSON.parse(await c2.next()).type, 'state');
    c2.close();

    // refused before it opens: no token, a wrong one, another site's page with the right one
    for (const opts of [{}, { protocols: ['peft-token.wrong'] },
      { protocols: [`peft-token.${token}`], headers: { Origin: 'https://evil.example' } }]) {
      const refused = await ws.connect(`${wsUrl}/ws`, opts);
      assert.ok([401, 403].includes(refused.status), `${JSON.stringify(opts.headers || opts.protocols)}: ${refused.status}`);
    }
  } finally {
    const { code } = await h.stop();
    await srv.close();
    assert.equal(code, 0, h.stderr.slice(-2000));
    fs.rmSync(root, { recursive: true, force: true });
  }
});

// The larger app, by hand (not in CI): chainlit, a FastAPI server (53 of its modules import,
// 13 optional integrations are skipped) plus socket.io, MCP and more beneath it; its
// WebSocket is socket.io's. Build it, then run this file with the folder set:
//   backend/build-bundle --variant linux-x86_64-cpu --out target/bundles/app-chainlit \
//     --asgi chainlit.server:app --requirements tests/apps/chainlit/requirements.txt
//   PEFT_TEST_CHAINLIT_BUNDLE_DIR=target/bundles/app-chainlit node --test electron/test/apps.test.js
const CHAINLIT = process.env.PEFT_TEST_CHAINLIT_BUNDLE_DIR;
test('a larger FastAPI app from PyPI (chainlit): delivered, launched, socket.io WebSocket with the token', { timeout: 300000 }, async (t) => {
  if (!CHAINLIT) { t.skip('set PEFT_TEST_CHAINLIT_BUNDLE_DIR to run it (see docs/BACKEND.md)'); return; }
  if (!need(t, 'bootstrap', 'release')) return;
  const root = tmp('peft-chainlit-');
  const bundle = path.resolve(CHAINLIT);
  const repo = new Repo(root).pack('1.0.0', bundle, `chainlit/chainlit${paths.EXE}`).publish();
  const srv = await serve(repo.dir);
  const appRoot = path.join(root, 'chainlit-root'); // chainlit writes .chainlit/ there, not into the install
  fs.mkdirSync(appRoot);
  const t0 = Date.now();
  const h = headless({ ...prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') }),
    CHAINLIT_APP_ROOT: appRoot });
  try {
    const ready = await h.waitFor((e) => e.event === 'ready', 240000);
    const tReady = Date.now();
    const { url, token } = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 120000);
    const tRunning = Date.now();
    t.diagnostic(`launch to ready (ensure: download, verify, install) ${tReady - t0} ms; ready to engine running ${tRunning - tReady} ms; `
      + `install ${ready.dir}`);
    let r = await call(`${url}/auth/config`, { token });
    assert.equal(r.status, 200, r.text);
    assert.ok('requireLogin' in r.json, r.text);
    r = await call(`${url}/project/translations?language=en-US`, { token });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.translation, 'translations');
    r = await call(`${url}/`, { token });
    assert.equal(r.status, 200);
    assert.match(r.text, /<html/i);
    for (const p of ['/auth/config', '/project/translations?language=en-US', '/']) {
      assert.equal((await call(url + p)).status, 401, p);
    }
    const sio = `${url.replace('http:', 'ws:')}/ws/socket.io/?EIO=4&transport=websocket`;
    const c = await ws.connect(sio, { protocols: [`peft-token.${token}`] });
    assert.equal(c.status, 101);
    const open = await c.next();
    assert.match(open, /^0\{.*"sid"/, 'engine.io open packet');
    c.close();
    for (const opts of [{}, { protocols: ['peft-token.nope'] }, { protocols: [`peft-token.${token}`], headers: { Origin: 'https://evil.example' } }]) {
      const refused = await ws.connect(sio, opts);
      assert.ok([401, 403].includes(refused.status), String(refused.status));
    }
  } finally {
    const { code } = await h.stop();
    await srv.close();
    assert.equal(code, 0, h.stderr.slice(-2000));
    fs.rmSync(root, { recursive: true, force: true });
  }
});

// The large app, by hand (not in CI): prefect's server, a FastAPI app made by a factory
// (prefect.server.api.server:create_app) out of a package of 628 modules of its own, many
// imported lazily; SQLite under PREFECT_HOME, migrated by alembic at start (its env.py and
// versions/ are read as files: --collect-sources). Dependencies load parts by name or as
// files: coolname its word lists, docket its lua/ scripts and its in-memory Redis
// (burner_redis), SQLAlchemy the aiosqlite driver (--collect); whenever tries
// `from ._typing_312 import *` and expects a SyntaxError below Python 3.12, which only a
// source file on disk gives (--collect-sources). WebSockets under /api/events and /api/logs.
//   backend/build-bundle --variant linux-x86_64-cpu --out target/bundles/app-prefect \
//     --asgi prefect.server.api.server:create_app --factory \
//     --collect coolname --collect docket --collect burner_redis --collect aiosqlite \
//     --collect-sources prefect.server.database._migrations --collect-sources whenever \
//     --requirements tests/apps/prefect/requirements.txt
//   PEFT_TEST_PREFECT_BUNDLE_DIR=target/bundles/app-prefect node --test electron/test/apps.test.js
const PREFECT = process.env.PEFT_TEST_PREFECT_BUNDLE_DIR;
test('the large FastAPI app from PyPI (prefect, 628 own modules): delivered, launched, its database and WebSocket with the token', { timeout: 400000 }, async (t) => {
  if (!PREFECT) { t.skip('set PEFT_TEST_PREFECT_BUNDLE_DIR to run it (see docs/BACKEND.md)'); return; }
  if (!need(t, 'bootstrap', 'release')) return;
  const root = tmp('peft-prefect-');
  const bundle = path.resolve(PREFECT);
  const repo = new Repo(root).pack('1.0.0', bundle, `prefect/prefect${paths.EXE}`).publish();
  const srv = await serve(repo.dir);
  const home = path.join(root, 'prefect-home'); // prefect's SQLite database and settings, not the install
  fs.mkdirSync(home);
  const t0 = Date.now();
  const h = headless({ ...prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') }),
    PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: 'false' });
  try {
    const ready = await h.waitFor((e) => e.event === 'ready', 300000);
    const tReady = Date.now();
    const { url, token } = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 180000);
    const tRunning = Date.now();
    t.diagnostic(`launch to ready (ensure: download, verify, install) ${tReady - t0} ms; ready to engine running ${tRunning - tReady} ms; `
      + `install ${ready.dir}`);
    let r = await call(`${url}/api/admin/version`, { token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json, '3.9.1');
    r = await call(`${url}/api/health`, { token });
    assert.equal(r.status, 200, r.text);
    // the database: alembic migrated it at start; a flow written is read back
    r = await call(`${url}/api/flows/`, { method: 'POST', token, body: { name: 'peft-large-app-proof' } });
    assert.ok([200, 201].includes(r.status), r.text);
    const id = r.json.id;
    r = await call(`${url}/api/flows/filter`, { method: 'POST', token, body: {} });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.some((f) => f.id === id && f.name === 'peft-large-app-proof'), r.text);
    for (const [p, method] of [['/api/admin/version', 'GET'], ['/api/health', 'GET'], ['/api/flows/filter', 'POST']]) {
      assert.equal((await call(url + p, { method, body: method === 'POST' ? {} : undefined })).status, 401, p);
    }
    // prefect's own WebSocket protocol: subprotocol "prefect", an auth message, then auth_success
    const events = `${url.replace('http:', 'ws:')}/api/events/out`;
    const c = await ws.connect(events, { protocols: ['prefect', `peft-token.${token}`] });
    assert.equal(c.status, 101);
    assert.equal(c.headers['sec-websocket-protocol'], 'prefect');
    c.send(JSON.stringify({ type: 'auth', token: null }));
    assert.deepEqual(JSON.parse(await c.next(30000)), { type: 'auth_success' });
    c.close();
    for (const opts of [{ protocols: ['prefect'] }, { protocols: ['prefect', 'peft-token.nope'] },
      { protocols: ['prefect', `peft-token.${token}`], headers: { Origin: 'https://evil.example' } }]) {
      const refused = await ws.connect(events, opts);
      assert.ok([401, 403].includes(refused.status), String(refused.status));
    }
  } finally {
    const { code } = await h.stop();
    await srv.close();
    assert.equal(code, 0, h.stderr.slice(-2000));
    fs.rmSync(root, { recursive: true, force: true });
  }
});
