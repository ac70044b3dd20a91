'use strict';
// The main process's side of the renderer (lib/renderer-bridge.js) with stand-ins for
// Electron's ipcMain and session (the Electron binary cannot run here), a real Launcher,
// and a real engine process that keeps the token rules (fixtures/token-engine.js). Each
// request the webRequest listeners decide about is then really sent, as Chromium would
// send it, and the engine's answer checked.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const crypto = require('node:crypto');
const { setupRendererBridge, readReleaseConfig, appOriginsFrom, engineOriginsEnv } = require('../lib/renderer-bridge');
const { urlFilter } = require('../lib/origin-map');
const { Launcher } = require('../lib/launcher');
const { tmp } = require('./support');

const FIXTURE_ENGINE = path.join(__dirname, 'fixtures', 'token-engine.js');
const APP_PAGE = 'file:///opt/app/resources/app.asar/dist/index.html';

/** ipcMain and session stand-ins that record what main.js registers. */
function fakeElectron() {
  const handle = {};
  const on = {};
  const web = {};
  const sent = [];
  return {
    ipcMain: { handle: (ch, fn) => { handle[ch] = fn; }, on: (ch, fn) => { on[ch] = fn; } },
    session: { webRequest: {
      onBeforeRequest: (f, fn) => { web.before = { f, fn }; },
      onBeforeSendHeaders: (f, fn) => { web.send = { f, fn }; },
      onHeadersReceived: (f, fn) => { web.received = { f, fn }; },
    } },
    broadcast: (channel, payload, isAppPage) => { for (const page of [APP_PAGE, 'https://evil.example/']) if (isAppPage(page)) sent.push({ page, channel, payload }); },
    handle, on, web, sent,
    /** ipcRenderer.sendSync from a page */
    sendSync(ch, page, ...args) { const e = { senderFrame: { url: page } }; on[ch](e, ...args); return e.returnValue; },
    invoke(ch, page) { return handle[ch]({ senderFrame: { url: page } }); },
    /** one webRequest listener call; resolves with what the callback got */
    call(which, details) { return new Promise((resolve) => web[which].fn(details, resolve)); },
  };
}

function request(url, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, json: body ? JSON.parse(body) : null }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake as a browser sends it; resolves with the status and the first frame's text. */
function handshake(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'), ...headers } });
    req.on('upgrade', (res, socket, head) => {
      const done = (d) => { socket.destroy(); resolve({ status: res.statusCode, frame: JSON.parse(d.subarray(4).toString()) }); };
      if (head.length) done(head); else socket.once('data', done);
    });
    req.on('response', (res) => { res.resume(); resolve({ status: res.statusCode }); });
    req.on('error', reject);
    req.end();
  });
}

async function started(t, config, env = {}) {
  const e = fakeElectron();
  // as main.js does: the engine's environment carries the app's origins
  const launcher = new Launcher({ mode: 'dev', env: { ...process.env, PEFT_DEV_PYTHON: FIXTURE_ENGINE, ...engineOriginsEnv({ env, config }) }, appDir: tmp(), bootTimeoutMs: 10000 });
  t.after(() => launcher.stop());
  const bridge = setupRendererBridge({ launcher, ipcMain: e.ipcMain, session: e.session, broadcast: e.broadcast, config, env });
  assert.ok(await launcher.start(), 'the engine started');
  return { e, launcher, bridge, engine: launcher.engine };
}

test('release.json: absent is {}, invalid names its full path; app origins from ui_url, app_origins and PEFT_UI_URL', () => {
  const dir = tmp();
  assert.deepEqual(readReleaseConfig(path.join(dir, 'release.json')), {});
  fs.writeFileSync(path.join(dir, 'release.json'), '{"manifest_url": ');
  assert.throws(() => readReleaseConfig(path.join(dir, 'release.json')), new RegExp(`${path.join(dir, 'release.json').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not valid JSON`));
  fs.writeFileSync(path.join(dir, 'release.json'), '[1]');
  assert.throws(() => readReleaseConfig(path.join(dir, 'release.json')), /must hold a JSON object/);
  fs.writeFileSync(path.join(dir, 'release.json'), '{"manifest_url":"https://x/m.json","legacy_origin":"http://localhost:8000","future_key":1}');
  assert.equal(readReleaseConfig(path.join(dir, 'release.json')).legacy_origin, 'http://localhost:8000');
  assert.deepEqual(appOriginsFrom({ config: { ui_url: 'index.html' } }), [], 'a file UI needs no origin');
  assert.deepEqual(appOriginsFrom({ env: { PEFT_UI_URL: 'http://localhost:5173/' }, config: { ui_url: 'https://app.example/ui', app_origins: ['http://localhost:3000'] } }),
    ['https://app.example:443', 'http://localhost:5173', 'http://localhost:3000']);
  assert.throws(() => appOriginsFrom({ config: { app_origins: 'http://localhost:3000' } }), /app_origins must be a list/);
});

test('without a legacy origin: status and restart channels only, no webRequest listeners, no shim', { timeout: 30000 }, async (t) => {
  const { e, engine } = await started(t, {});
  assert.deepEqual(Object.keys(e.web), [], 'the session is left alone');
  assert.equal(e.sendSync('backend:legacy-shim', APP_PAGE), '');
  const s = await e.invoke('backend:get-status', APP_PAGE);
  assert.equal(s.state, 'running');
  assert.equal(s.url, engine.url);
  assert.equal(s.token, engine.token);
  assert.throws(() => e.invoke('backend:get-status', 'https://evil.example/'), /not one of this app's pages/);
  const told = e.sent.filter((m) => m.channel === 'backend-status');
  assert.ok(told.some((m) => m.payload.state === 'running' && m.payload.token === engine.token), 'backend-status carried the running engine');
  assert.ok(told.every((m) => m.page === APP_PAGE), 'never sent to a foreign page');
  assert.equal(e.sendSync('backend:map-websocket', APP_PAGE, 'ws://localhost:8000/ws'), 'ws://localhost:8000/ws');
});

test('legacy origin: a real request to http://localhost:8000 reaches the engine with the token; the same request unmapped is refused', { timeout: 30000 }, async (t) => {
  const { e, engine } = await started(t, { legacy_origin: 'http://localhost:8000' });
  assert.deepEqual(e.web.before.f, urlFilter());
  const details = { id: 1, url: 'http://localhost:8000/api/models?limit=2', method: 'GET', resourceType: 'xhr', frame: { url: APP_PAGE } };
  const redirected = await e.call('before', details);
  assert.equal(redirected.redirectURL, `${engine.url}/api/models?limit=2`);

  // Chromium restarts the request at the new URL, cross-origin from a file:// page: Origin null
  const next = { ...details, id: 2, url: redirected.redirectURL, requestHeaders: { Accept: 'application/json', Origin: 'null' } };
  const sendH = await e.call('send', next);
  assert.equal(sendH.requestHeaders.Authorization, `Bearer ${engine.token}`);
  const res = await request(next.url, { headers: sendH.requestHeaders });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  assert.deepEqual([res.json.path, res.json.query, res.json.origin], ['/api/models', '?limit=2', engine.url], 'the engine saw its own origin');
  const cors = await e.call('received', { ...next, statusCode: res.status, responseHeaders: { 'content-type': ['application/json'] } });
  assert.deepEqual(cors.responseHeaders['Access-Control-Allow-Origin'], ['null'], 'CORS answered for the page as the browser sent it');

  const bare = await request(next.url, { headers: { Accept: 'application/json', Origin: 'null' } });
  assert.equal(bare.status, 401, 'the same request without the mapping: no token, refused');
  const site = await request(next.url, { headers: { ...sendH.requestHeaders, Origin: 'https://evil.example' } });
  assert.equal(site.status, 403, 'another site\'s Origin is refused even with the token');

  // a foreign page in the same session: no redirect, no token
  assert.deepEqual(await e.call('before', { ...details, id: 3, frame: { url: 'https://evil.example/' } }), {});
  assert.deepEqual(await e.call('send', { ...next, id: 4, frame: { url: 'https://evil.example/' } }), {});
  // navigations are never redirected
  assert.deepEqual(await e.call('before', { ...details, id: 5, resourceType: 'mainFrame' }), {});
});

test('legacy origin, preflight: OPTIONS gets the token, and the answer passes CORS even from an app without CORS middleware', { timeout: 30000 }, async (t) => {
  const { e, engine } = await started(t, { legacy_origin: 'http://localhost:8000' });
  const pre = { id: 9, url: `${engine.url}/api/jobs`, method: 'OPTIONS', resourceType: 'xhr', frame: { url: APP_PAGE },
    requestHeaders: { Origin: 'null', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } };
  const h = await e.call('send', pre);
  const res = await request(pre.url, { method: 'OPTIONS', headers: h.requestHeaders });
  assert.equal(res.status, 200);
  const answer = await e.call('received', { ...pre, statusCode: 405, responseHeaders: {} });
  assert.equal(answer.statusLine, 'HTTP/1.1 204 No Content');
  assert.deepEqual(answer.responseHeaders['Access-Control-Allow-Methods'], ['POST']);
  assert.deepEqual(answer.responseHeaders['Access-Control-Allow-Headers'], ['content-type']);
});

test('legacy origin, WebSocket: the mapped URL opens on the engine (peft_token query plus the Authorization header); unmapped is refused', { timeout: 30000 }, async (t) => {
  const { e, engine, launcher } = await started(t, { legacy_origin: 'http://localhost:8000' });
  assert.match(e.sendSync('backend:legacy-shim', APP_PAGE), /installWebSocketShim/);
  assert.equal(e.sendSync('backend:legacy-shim', 'https://evil.example/'), '', 'a foreign page gets no shim');
  const mapped = e.sendSync('backend:map-websocket', APP_PAGE, 'ws://localhost:8000/ws/train?run=4');
  assert.equal(mapped, `${engine.url.replace('http:', 'ws:')}/ws/train?run=4&peft_token=${engine.token}`);
  const h = await e.call('send', { id: 20, url: mapped, method: 'GET', resourceType: 'webSocket', frame: { url: APP_PAGE }, requestHeaders: { Origin: 'file://' } });
  assert.equal(h.requestHeaders.Authorization, `Bearer ${engine.token}`);
  const httpUrl = mapped.replace('ws:', 'http:');
  const ok = await handshake(httpUrl, h.requestHeaders);
  assert.equal(ok.status, 101);
  assert.deepEqual([ok.frame.path, ok.frame.query], ['/ws/train', `?run=4&peft_token=${engine.token}`]);
  const queryOnly = await handshake(httpUrl, { Origin: engine.url });
  assert.equal(queryOnly.status, 101, 'the query parameter alone is enough (what a browser without the header sends)');
  const none = await handshake(`${engine.url}/ws/train?run=4`, { Origin: engine.url });
  assert.equal(none.status, 401, 'no token: refused');
  assert.equal(e.sendSync('backend:map-websocket', 'https://evil.example/', 'ws://localhost:8000/ws'), 'ws://localhost:8000/ws');

  await launcher.stop();
  assert.equal(e.sendSync('backend:map-websocket', APP_PAGE, 'ws://localhost:8000/ws'), 'ws://localhost:8000/ws', 'no engine: nothing to map to');
  assert.deepEqual(await e.call('before', { id: 30, url: 'http://localhost:8000/x', resourceType: 'xhr', frame: { url: APP_PAGE } }), {});
  assert.notEqual((await e.invoke('backend:get-status', APP_PAGE)).state, 'running');
});

test('an invalid legacy_origin is refused before anything is registered', () => {
  const e = fakeElectron();
  const launcher = new (require('node:events').EventEmitter)();
  assert.throws(() => setupRendererBridge({ launcher, ipcMain: e.ipcMain, session: e.session, broadcast: e.broadcast, config: { legacy_origin: 'http://example.com:8000' } }),
    /must name this machine/);
  assert.deepEqual([Object.keys(e.handle), Object.keys(e.on), Object.keys(e.web)], [[], [], []]);
});

test('engineOriginsEnv: the app\'s origins for the engine\'s Origin check, merged with what is set; never throws', () => {
  assert.deepEqual(engineOriginsEnv({}), {});
  assert.deepEqual(engineOriginsEnv({ config: { ui_url: 'index.html' } }), {}, 'a file UI that asks for the URL itself adds nothing unless listed');
  assert.deepEqual(engineOriginsEnv({ config: { ui_url: 'index.html', legacy_origin: 'http://localhost:8000' } }), { PEFT_ALLOWED_ORIGINS: 'null' },
    'a legacy origin also accepts a file:// page\'s Origin, should the handshake keep it');
  assert.deepEqual(engineOriginsEnv({ config: { legacy_origin: 'http://example.com' } }), {}, 'an invalid legacy origin adds nothing (it is reported elsewhere)');
  assert.deepEqual(engineOriginsEnv({ env: { PEFT_ALLOWED_ORIGINS: 'app://studio', PEFT_UI_URL: 'http://localhost:5173/' },
    config: { ui_url: 'https://app.example:443/ui', app_origins: ['null', 'http://localhost:3000', 'app://studio'] } }),
  { PEFT_ALLOWED_ORIGINS: 'app://studio,https://app.example,http://localhost:5173,http://localhost:3000,null' });
  assert.deepEqual(engineOriginsEnv({ config: { app_origins: 'not a list' } }), {});
});

test('a renderer that calls the engine directly from its dev server: its Origin is accepted, another is not', { timeout: 30000 }, async (t) => {
  const { e, engine } = await started(t, { app_origins: ['http://localhost:5173'] });
  const s = await e.invoke('backend:get-status', 'http://localhost:5173/');
  assert.equal(s.url, engine.url, 'the dev server\'s page is one of the app\'s');
  const ok = await request(`${s.url}/api/x`, { headers: { Authorization: `Bearer ${s.token}`, Origin: 'http://localhost:5173' } });
  assert.equal(ok.status, 200, JSON.stringify(ok.json));
  const other = await request(`${s.url}/api/x`, { headers: { Authorization: `Bearer ${s.token}`, Origin: 'http://localhost:5174' } });
  assert.equal(other.status, 403);
});
