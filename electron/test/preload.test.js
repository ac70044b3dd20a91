'use strict';
// preload.js run as Electron runs a sandboxed preload, with `electron` stood in for by
// objects that route each IPC call to the real main-process side (renderer-bridge.js):
// the names the page gets, the channels on both sides agreeing, and the WebSocket shim
// installed in the page's world and mapping through the bridge.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { EventEmitter } = require('node:events');
const { setupRendererBridge } = require('../lib/renderer-bridge');

const PAGE = 'file:///opt/app/resources/app.asar/dist/index.html';
const SOURCE = fs.readFileSync(path.join(__dirname, '..', 'preload.js'), 'utf8');

/** The main process (real bridge, a launcher that only emits events) and a page running the preload. */
function world(config, { executeInMainWorld = true } = {}) {
  const handle = {};
  const on = {};
  const ipcMain = { handle: (ch, fn) => { handle[ch] = fn; }, on: (ch, fn) => { on[ch] = fn; } };
  const session = { webRequest: { onBeforeRequest() {}, onBeforeSendHeaders() {}, onHeadersReceived() {} } };
  const launcher = new EventEmitter();
  launcher.quitting = false;
  launcher.restartToUpdate = async () => null;
  const toPage = new EventEmitter();
  setupRendererBridge({ launcher, ipcMain, session, config, env: {}, broadcast: (ch, payload, isApp) => { if (isApp(PAGE)) toPage.emit(ch, {}, payload); } });

  class NativeWebSocket { constructor(url, protocols) { this.url = url; this.protocols = protocols; } }
  const page = { WebSocket: NativeWebSocket }; // the page's own world
  const exposed = {};
  const sender = { senderFrame: { url: PAGE } };
  const ran = [];
  const electron = {
    contextBridge: {
      exposeInMainWorld: (key, api) => { if (key in page) throw new Error(`${key} exposed twice`); exposed[key] = api; page[key] = api; },
      ...(executeInMainWorld ? { executeInMainWorld: ({ func }) => { ran.push('executeInMainWorld'); vm.runInNewContext(`(${func.toString()})()`, { window: page }); } } : {}),
    },
    ipcRenderer: {
      invoke: async (ch, ...args) => handle[ch](sender, ...args),
      sendSync: (ch, ...args) => { const e = { ...sender }; on[ch](e, ...args); return e.returnValue; },
      send: () => {},
      on: (ch, fn) => toPage.on(ch, fn),
      removeListener: (ch, fn) => toPage.removeListener(ch, fn),
    },
    webFrame: { executeJavaScript: (src) => { ran.push('executeJavaScript'); vm.runInNewContext(src, { window: page }); return Promise.resolve(); } },
  };
  vm.runInNewContext(SOURCE, { require: (m) => { if (m !== 'electron') throw new Error(`a sandboxed preload cannot require ${m}`); return electron; } });
  return { launcher, page, exposed, ran, NativeWebSocket };
}

const running = { event: 'engine', state: 'running', pid: 42, url: 'http://127.0.0.1:41000', token: 'tok', version: '1.0.0', variant: 'linux-x86_64-cpu' };

test('window.electronAPI and window.peft carry the backend names; peft keeps onEvent and act', async () => {
  const { launcher, exposed } = world({});
  const names = ['getBackendStatus', 'restartBackend', 'onBackendStatus', 'getBackendUrl', 'getBackendToken', 'mapWebSocketUrl'];
  for (const n of names) {
    assert.equal(typeof exposed.electronAPI[n], 'function', `electronAPI.${n}`);
    assert.equal(typeof exposed.peft[n], 'function', `peft.${n}`);
  }
  assert.equal(typeof exposed.peft.onEvent, 'function');
  assert.equal(typeof exposed.peft.act, 'function');
  assert.equal((await exposed.electronAPI.getBackendStatus()).state, 'idle');
  assert.equal(await exposed.electronAPI.getBackendUrl(), null);
  const seen = [];
  const off = exposed.electronAPI.onBackendStatus((s) => seen.push(s.state));
  launcher.emit('event', running);
  assert.deepEqual(seen, ['running'], 'backend-status reached the page');
  assert.equal(await exposed.peft.getBackendUrl(), 'http://127.0.0.1:41000');
  assert.equal(await exposed.electronAPI.getBackendToken(), 'tok');
  off();
  launcher.emit('event', { event: 'engine', state: 'exited', code: 1 });
  assert.deepEqual(seen, ['running'], 'unsubscribed');
  assert.equal((await exposed.electronAPI.restartBackend()).state, 'exited');
});

test('with a legacy origin the page\'s WebSocket is wrapped and maps through the main process', () => {
  const { launcher, page, ran, NativeWebSocket } = world({ legacy_origin: 'http://localhost:8000' });
  assert.deepEqual(ran, ['executeInMainWorld']);
  assert.notEqual(page.WebSocket, NativeWebSocket);
  assert.equal(new page.WebSocket('ws://localhost:8000/ws').url, 'ws://localhost:8000/ws', 'no engine yet: unchanged');
  launcher.emit('event', running);
  const ws = new page.WebSocket('ws://localhost:8000/ws/train?run=1', ['chat']);
  assert.equal(ws.url, 'ws://127.0.0.1:41000/ws/train?run=1&peft_token=tok');
  assert.deepEqual(ws.protocols, ['chat']);
  assert.equal(new page.WebSocket('wss://elsewhere.example/x').url, 'wss://elsewhere.example/x');
});

test('older Electron (no executeInMainWorld): the shim goes through webFrame.executeJavaScript; no legacy origin: no shim', () => {
  const old = world({ legacy_origin: 'http://localhost:8000' }, { executeInMainWorld: false });
  assert.deepEqual(old.ran, ['executeJavaScript']);
  assert.notEqual(old.page.WebSocket, old.NativeWebSocket);
  const none = world({});
  assert.deepEqual(none.ran, []);
  assert.equal(none.page.WebSocket, none.NativeWebSocket);
});
