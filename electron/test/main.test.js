'use strict';
// main.js wired to a stand-in of the `electron` module (the Electron binary cannot be
// downloaded where CI runs): the window is resizable, the menu has the Engine page,
// events queued before the page listens are delivered after `peft:ready`, a failed
// engine brings the progress window back, the Engine page's questions are answered,
// "Choose another location" is remembered in settings.json, quit stops everything.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const Module = require('node:module');
const { EventEmitter } = require('node:events');
const { tmp } = require('./support');

function fakeElectron(userData, pickFolder) {
  const ipc = new EventEmitter();
  ipc.handlers = {};
  ipc.handle = (name, fn) => { ipc.handlers[name] = fn; };
  const windows = [];
  class BrowserWindow extends EventEmitter {
    constructor(opts) {
      super();
      this.opts = opts;
      this.loaded = [];
      this.sent = [];
      this.webContents = { send: (ch, ev) => this.sent.push([ch, ev]), getURL: () => this.loaded[this.loaded.length - 1] || '' };
      windows.push(this);
    }
    loadFile(f) { this.loaded.push(path.basename(f)); }
    loadURL(u) { this.loaded.push(u); }
    isDestroyed() { return false; }
    show() {}
    static getAllWindows() { return windows; }
  }
  let exited = null;
  const readyCbs = []; // main.js has more than one whenReady handler: all run, in order
  const app = {
    isPackaged: false,
    whenReady: () => ({ then: (cb) => { readyCbs.push(cb); } }),
    getPath: (n) => (n === 'userData' ? userData : userData),
    getVersion: () => '0.1.0',
    on: () => {},
    exit: (c) => { exited = c; },
    quit: () => {},
  };
  let menu = null;
  return {
    module: {
      app, BrowserWindow, ipcMain: ipc,
      // no legacy origin is configured here, so the renderer bridge registers no webRequest listener
      session: { defaultSession: { webRequest: {} } },
      Menu: { buildFromTemplate: (t) => t, setApplicationMenu: (m) => { menu = m; } },
      dialog: { showOpenDialog: async () => ({ canceled: false, filePaths: [pickFolder] }), showMessageBox: async () => ({ response: 1 }) },
      shell: { openPath: async () => '' },
    },
    ipc, windows, get menu() { return menu; }, get exited() { return exited; }, ready: () => { for (const cb of readyCbs) cb(); },
  };
}

test('main.js: window, menu, event delivery, Engine page questions, another location, quit', { timeout: 30000 }, async () => {
  const userData = tmp();
  const pick = tmp();
  const fake = fakeElectron(userData, pick);
  const origLoad = Module._load;
  Module._load = function (request, ...rest) { return request === 'electron' ? fake.module : origLoad.call(this, request, ...rest); };
  const saved = { ...process.env };
  // development mode with no Python that has the engine's packages: the engine cannot start
  Object.assign(process.env, { PEFT_DEV_PYTHON: path.join(pick, 'no-python'), PEFT_APP_DIR: path.join(userData, 'app') });
  try {
    delete require.cache[require.resolve('../main.js')];
    require('../main.js');
    fake.ready();
    const win = fake.windows[0];
    assert.ok(win, 'a window');
    assert.equal(win.opts.resizable, true);
    assert.ok(win.opts.minWidth <= 360, 'usable at 360 px');
    assert.equal(win.loaded[0], 'progress.html');
    const engineMenu = fake.menu.find((m) => m.label === 'Engine');
    assert.ok(engineMenu.submenu.some((i) => i.label === 'Engine page'), 'the Engine page is in the menu');
    assert.ok(fake.menu.some((m) => m.role === 'viewMenu'), 'View menu (zoom) kept');

    // the engine fails (no usable Python): queued until the page says it listens
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(win.sent, [], 'nothing sent before peft:ready');
    fake.ipc.emit('peft:ready', { sender: win.webContents });
    const failed = win.sent.find(([, ev]) => ev.event === 'engine' && ev.state === 'failed');
    assert.ok(failed, JSON.stringify(win.sent));
    assert.match(failed[1].message, /PEFT_DEV_PYTHON names .*no-python, which is not an executable file/);

    // the Engine page from the menu, and its questions
    engineMenu.submenu.find((i) => i.label === 'Engine page').click();
    assert.equal(win.loaded.at(-1), 'engine.html');
    const info = await fake.ipc.handlers['peft:ask']({}, 'engine-info');
    assert.equal(info.mode, 'dev');
    assert.equal(info.running, null);
    const st = await fake.ipc.handlers['peft:ask']({}, 'selftest-start', 8);
    assert.match(st.error, /not running/);
    await assert.rejects(fake.ipc.handlers['peft:ask']({}, 'rm -rf'), /unknown question/);

    // "Choose another location": a folder of its own inside the chosen one, remembered
    fake.ipc.emit('peft:act', {}, 'location');
    await new Promise((r) => setTimeout(r, 1500));
    const saved2 = JSON.parse(fs.readFileSync(path.join(userData, 'settings.json'), 'utf8'));
    assert.deepEqual(saved2, { cacheDir: path.join(pick, 'PEFT Studio engine') });

    // quit: the close handler stops the launcher, then exits 0
    const e = { preventDefault() {} };
    win.emit('close', e);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(fake.exited, 0);
  } finally {
    Module._load = origLoad;
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
