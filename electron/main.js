'use strict';
// The Electron main process: wires the launcher (lib/, tested under plain Node) to
// app, BrowserWindow, ipcMain and dialog. Nothing here decides anything the tests
// cannot see; it cannot run where the Electron binary is absent (CI), so keep it thin.
//
// Production (app.isPackaged): peft-bootstrap from <resources>/bin, `ensure` with
// this app's version. Development: backend/main.py from source (PEFT_DEV=0 forces
// the production path from a checkout, with PEFT_BOOTSTRAP pointing at a build).

const { app, BrowserWindow, ipcMain, dialog, shell } = require('electron');
const path = require('node:path');
const { session } = require('electron');
const { setupRendererBridge, readReleaseConfig, engineOriginsEnv } = require('./lib/renderer-bridge');
const { Launcher } = require('./lib/launcher');
const { JobObject } = require('./lib/winjob');
const { findBundlesFolder } = require('./lib/offline');
const paths = require('./lib/paths');
const appUpdate = require('./lib/app-update');

const production = app.isPackaged ? process.env.PEFT_DEV !== '1' : process.env.PEFT_DEV === '0';
let win = null;
let launcher = null;
let jobObject = null;
const backlog = []; // events before the window listens
let windowReady = false;
let quitting = false;

function send(ev) {
  if (windowReady && win && !win.isDestroyed()) win.webContents.send('peft:event', ev);
  else backlog.push(ev);
}

function createWindow() {
  win = new BrowserWindow({
    width: 620, height: 500, resizable: false, show: false, title: 'PEFT Studio',
    backgroundColor: '#f4f5f7',
    webPreferences: { preload: path.join(__dirname, 'preload.js'), contextIsolation: true, sandbox: true, nodeIntegration: false },
  });
  win.once('ready-to-show', () => win.show());
  win.loadFile(path.join(__dirname, 'ui', 'progress.html'));
  win.on('close', onClose);
}

async function start(choice) {
  const engine = await launcher.start(choice);
  if (engine && production) launcher.checkForUpdate().catch(() => {});
  if (engine && production) startAppUpdates();
  // The app's own UI is not part of this repository: PEFT_UI_URL names it (its
  // renderer gets the base URL and token through the same `engine` event).
  if (engine && process.env.PEFT_UI_URL && win) win.loadURL(process.env.PEFT_UI_URL);
}

// The app's own updates (lib/app-update.js decides): electron-updater's generic feed
// beside the engine channel named in <resources>/bin/release.json; checked after the
// engine runs and every 6 hours; a UI no published engine serves is never downloaded,
// and the engine a new UI needs is staged first. PEFT_APP_UPDATE=0 turns it off.
let appUpdater = null;
let lastReady = null; // the bootstrapper's last `ready`: the release and variant the engine runs
function startAppUpdates() {
  if (appUpdater || process.env.PEFT_APP_UPDATE === '0') return;
  let config;
  try { config = appUpdate.readReleaseConfig(path.join(process.resourcesPath, 'bin', 'release.json')); } catch (err) {
    launcher._log(`app updates off: ${err.message}`);
    return;
  }
  const feed = appUpdate.appFeedUrl(config);
  if (!feed) return;
  const { autoUpdater } = require('electron-updater');
  autoUpdater.autoDownload = false; // nothing is fetched before the decision
  autoUpdater.autoInstallOnAppQuit = true;
  autoUpdater.setFeedURL({ provider: 'generic', url: feed });
  appUpdater = new appUpdate.AppUpdater({
    updater: autoUpdater, current: app.getVersion(),
    engine: () => lastReady && { version: lastReady.version, variant: lastReady.variant }, // the installed release, as the manifest names it
    fetchReleases: () => appUpdate.fetchReleases(config.manifest_url),
    stageEngine: (v) => appUpdate.stageEngine({ bin: launcher._bin(), uiVersion: v, env: process.env, onStderr: (t) => launcher._log(t.trim()) }),
  });
  appUpdater.on('event', (ev) => {
    send(ev);
    launcher._log(`app update: ${ev.state}${ev.version ? ` ${ev.version}` : ''}${ev.message ? `: ${ev.message}` : ''}`);
    if (ev.state === 'downloaded' && win && !win.isDestroyed()) {
      dialog.showMessageBox(win, { type: 'info', buttons: ['Restart now', 'Later'], defaultId: 0, cancelId: 1,
        message: `PEFT Studio ${ev.version} is ready`, detail: 'Restart to use it, or it is installed when you quit.' })
        .then((r) => { if (r.response === 0) { quitting = true; launcher.stop().finally(() => autoUpdater.quitAndInstall()); } });
    }
  });
  appUpdater.check();
  setInterval(() => appUpdater.check(), 6 * 3600 * 1000).unref();
}

async function onAction(_e, name) {
  const choice = { ...launcher.choice };
  switch (name) {
    case 'retry': return start(choice);
    case 'cpu': return start({ ...choice, variant: cpuVariant() });
    case 'folder': {
      const r = await dialog.showOpenDialog(win, { title: 'Install the engine from a folder', properties: ['openDirectory'],
        message: 'Choose the peft-backend-bundles folder (for example on a USB stick)' });
      if (!r.canceled && r.filePaths[0]) return start({ ...choice, offlineDir: r.filePaths[0] });
      return null;
    }
    case 'log': return shell.openPath(launcher.logFile);
    case 'cancel': return launcher.cancel();
    case 'restart': return launcher.restartToUpdate();
    default: return null;
  }
}

function cpuVariant() {
  const os = { linux: 'linux', darwin: 'macos', win32: 'windows' }[process.platform];
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch] || process.arch;
  return `${os}-${arch}-cpu`;
}

// Quit: ask first while a job runs, then stop the engine (SIGTERM to its group,
// SIGKILL after 1 s) and only then let the app exit.
async function onClose(e) {
  if (quitting) return;
  e.preventDefault();
  if (await launcher.busy()) {
    const r = await dialog.showMessageBox(win, {
      type: 'question', buttons: ['Keep training', 'Stop and quit'], defaultId: 0, cancelId: 0,
      message: 'A fine-tuning job is still running.', detail: 'Quitting stops it; the finished steps are not saved as an adapter.',
    });
    if (r.response !== 1) return;
  }
  quitting = true;
  try { await launcher.stop(); } finally {
    if (jobObject) jobObject.close();
    app.exit(0);
  }
}

app.whenReady().then(() => {
  jobObject = process.platform === 'win32' ? new JobObject((t) => launcher && launcher._log(t)).start() : null;
  const offlineDir = production ? findBundlesFolder(app.getPath('exe')) : null;
  launcher = new Launcher({
    mode: production ? 'production' : 'dev',
    bootstrap: production ? paths.bootstrapperPath(process.env, process.resourcesPath) : undefined,
    uiVersion: app.getVersion(),
    env: process.env,
    appDir: paths.appDir(process.env, app.getPath('userData')),
    jobObject,
    choice: offlineDir ? { offlineDir } : {},
  });
  launcher.on('event', send);
  launcher.on('event', (ev) => { if (ev.event === 'ready') lastReady = ev; });
  ipcMain.on('peft:ready', () => { windowReady = true; for (const ev of backlog.splice(0)) send(ev); });
  ipcMain.on('peft:act', onAction);
  createWindow();
  start(launcher.choice);
});

app.on('before-quit', (e) => { if (!quitting && win) { e.preventDefault(); win.close(); } });
app.on('window-all-closed', () => { if (quitting) app.quit(); });

// The app's renderer (docs/CONTRACT.md §10): getBackendStatus/restartBackend, the
// backend-status event, the legacy origin, and the engine's PEFT_ALLOWED_ORIGINS, all
// from release.json beside the bootstrapper (production; in development the
// PEFT_LEGACY_ORIGIN / PEFT_UI_URL variables alone). This second whenReady handler runs right after the one above has made the launcher, and
// before the launcher's first event or engine start (both wait on later jobs).
app.whenReady().then(() => {
  let config = {};
  let problem = null;
  try {
    if (production) config = readReleaseConfig(path.join(path.dirname(paths.bootstrapperPath(process.env, process.resourcesPath)), 'release.json'));
  } catch (err) { problem = err; }
  launcher.env = { ...launcher.env, ...engineOriginsEnv({ env: process.env, config }) };
  const broadcast = (channel, payload, isAppPage) => {
    for (const w of BrowserWindow.getAllWindows()) if (!w.isDestroyed() && isAppPage(w.webContents.getURL())) w.webContents.send(channel, payload);
  };
  try {
    if (problem) throw problem;
    setupRendererBridge({ launcher, ipcMain, session: session.defaultSession, env: process.env, config, broadcast });
  } catch (err) { // a bad release.json or legacy_origin: said in the window; the status channels still answer
    send({ event: 'error', code: 'usage', reason: 'config_invalid', exit_code: 2, message: err.message, launcher: true });
    setupRendererBridge({ launcher, ipcMain, session: session.defaultSession, env: {}, config: {}, broadcast });
  }
});
