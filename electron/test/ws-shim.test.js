'use strict';
// The page side of the legacy origin for WebSockets (lib/ws-shim.js), in Debian's
// Chromium: the shim is installed before the page's scripts (as the preload does), the
// page opens ws://localhost:8000/... as PEFT Studio's renderer does, and a real socket
// opens on a real engine process that requires the token (fixtures/token-engine.js).
// The preload's synchronous IPC is stood in for by a table computed in Node by the real
// OriginMap.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { need, tmp, CHROMIUM } = require('./support');
const { shimScript, installWebSocketShim } = require('../lib/ws-shim');
const { OriginMap, legacyOriginsFrom } = require('../lib/origin-map');

const TOKEN = 'shim-test-token';

function startEngine(t) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'token-engine.js')], { env: { ...process.env, PEFT_ENGINE_TOKEN: TOKEN, PEFT_ALLOWED_ORIGINS: 'null' }, stdio: ['pipe', 'pipe', 'inherit'] });
    t.after(() => child.kill('SIGKILL'));
    child.stdout.once('data', (d) => resolve(JSON.parse(d.toString().split('\n')[0]).port));
    child.on('error', reject);
  });
}

test('installWebSocketShim keeps the native constructor\'s face and maps only through the bridge', () => {
  const opened = [];
  class Native { constructor(url, protocols) { opened.push([url, protocols]); } }
  Native.CONNECTING = 0; Native.OPEN = 1; Native.CLOSING = 2; Native.CLOSED = 3;
  const win = { WebSocket: Native };
  assert.equal(installWebSocketShim(win, (u) => (u === 'ws://localhost:8000/ws' ? 'ws://127.0.0.1:5/ws?peft_token=t' : u)), true);
  assert.equal(installWebSocketShim(win, () => 'x'), false, 'installed once');
  const ws = new win.WebSocket('ws://localhost:8000/ws', ['chat']);
  assert.ok(ws instanceof win.WebSocket && ws instanceof Native);
  new win.WebSocket('wss://elsewhere.example/feed');
  new win.WebSocket(new URL('ws://localhost:8000/ws'));
  assert.deepEqual(opened, [['ws://127.0.0.1:5/ws?peft_token=t', ['chat']], ['wss://elsewhere.example/feed', undefined], ['ws://127.0.0.1:5/ws?peft_token=t', undefined]]);
  assert.deepEqual([win.WebSocket.CONNECTING, win.WebSocket.OPEN, win.WebSocket.CLOSING, win.WebSocket.CLOSED], [0, 1, 2, 3]);
  assert.throws(() => win.WebSocket('ws://localhost:8000/ws'), TypeError, 'like the native one, it needs new');
  const broken = { WebSocket: Native };
  installWebSocketShim(broken, () => { throw new Error('bridge gone'); });
  new broken.WebSocket('ws://localhost:8000/ws');
  assert.deepEqual(opened.at(-1), ['ws://localhost:8000/ws', undefined], 'a failing bridge opens what the page asked for');
  assert.equal(installWebSocketShim({}, () => 'x'), false, 'no WebSocket: nothing to wrap');
});

test('in Chromium: the page\'s ws://localhost:8000 socket opens on the engine with the token; other sockets are untouched', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const port = await startEngine(t);
  const map = new OriginMap({ legacy: legacyOriginsFrom({ config: { legacy_origin: 'http://localhost:8000' } }) });
  map.setEngine({ url: `http://127.0.0.1:${port}`, token: TOKEN });
  const PAGE = `file://${path.join(tmp(), 'index.html')}`;
  fs.writeFileSync(new URL(PAGE), '<!doctype html><title>app</title><p>renderer</p>');
  const asked = ['ws://localhost:8000/ws/train?run=4', `ws://127.0.0.1:${port}/ws/plain`];
  const table = Object.fromEntries(asked.map((u) => [u, map.mapWebSocket(u, PAGE)]));
  assert.match(table[asked[0]], new RegExp(`^ws://127\\.0\\.0\\.1:${port}/ws/train\\?run=4&peft_token=${TOKEN}$`));

  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  t.after(() => browser.close());
  const page = await browser.newPage();
  // what the preload does: the bridged map first, then the shim, before the page's own scripts
  await page.addInitScript({ content: `window.peft = { mapWebSocketUrl: (u) => (${JSON.stringify(table)})[u] ?? u };\n${shimScript()}` });
  await page.goto(PAGE);
  const r = await page.evaluate((urls) => {
    const open = (url, protocols) => new Promise((resolve) => {
      const ws = new WebSocket(url, protocols);
      ws.onmessage = (m) => { resolve({ ok: true, data: JSON.parse(m.data), protocol: ws.protocol, url: ws.url, isWs: ws instanceof WebSocket, open: ws.readyState === WebSocket.OPEN }); ws.close(); };
      ws.onerror = () => resolve({ ok: false });
    });
    return Promise.all([open(urls[0], ['chat']), open(urls[1])]);
  }, asked);
  assert.equal(r[0].ok, true, 'the legacy socket opened');
  assert.deepEqual([r[0].data.path, r[0].data.query, r[0].protocol, r[0].isWs, r[0].open], ['/ws/train', `?run=4&peft_token=${TOKEN}`, 'chat', true, true]);
  // a file:// page's socket says Origin null; in the app the main process replaces it with the
  // engine's own (renderer-bridge.test.js), here the engine accepts it (PEFT_ALLOWED_ORIGINS)
  assert.equal(r[0].data.origin, 'null');
  assert.equal(r[1].ok, false, 'a socket not on the legacy origin gets no token and is refused');
});

test('shimScript finds mapWebSocketUrl on window.peft or window.electronAPI, and installs nothing without it', () => {
  const run = (win) => new Function('window', shimScript())(win);
  class Native { constructor(url) { this.url = url; } }
  const viaApp = { WebSocket: Native, electronAPI: { mapWebSocketUrl: (u) => `${u}?mapped` } };
  run(viaApp);
  assert.equal(new viaApp.WebSocket('ws://localhost:8000/ws').url, 'ws://localhost:8000/ws?mapped', 'an app\'s own preload object');
  const viaPeft = { WebSocket: Native, peft: { mapWebSocketUrl: () => 'ws://peft' }, electronAPI: {} };
  run(viaPeft);
  assert.equal(new viaPeft.WebSocket('ws://localhost:8000/ws').url, 'ws://peft');
  const neither = { WebSocket: Native, electronAPI: { somethingElse() {} } };
  run(neither);
  assert.equal(neither.WebSocket, Native, 'left alone');
});
