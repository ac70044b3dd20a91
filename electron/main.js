'use strict';
// The Electron main process: wires the launcher (lib/, tested under plain Node) to
// app, BrowserWindow, Menu, ipcMain and dialog. Nothing here decides anything the
// tests cannot see; it cannot run where the Electron binary is absent (CI), so keep it thin.
//
// Production (app.isPackaged): peft-bootstrap from <resources>/bin, `ensure` with
// this app's version; release.json beside it names the repository (the launcher
// passes none of it) and optionally `ui_url`. Development: backend/main.py from
// source (PEFT_DEV=0 forces the production path from a checkout, with PEFT_BOOTSTRAP
// pointing at a build).
//
// Pages: ui/progress.html until the engine runs; then release.json's ui_url, else
// ui/engine.html (the Engine page, always reachable from the menu: Engine → Engine page).

const { app, BrowserWindow, Menu, ipcMain, dialog, shell } = require('electron');
const path = require('node:path');
const { session } = require('electron');
const { setupRendererBridge, readReleaseConfig, engineOriginsEnv } = require('./lib/renderer-bridge');
const { Launcher } = require('./lib/launcher');
const { JobObject } = require('./lib/winjob');
const { findBundlesFolder } = require('./lib/offline');
const enginectl = require('./lib/enginectl');
const release = require('./lib/release');
const settingsFile = require('./lib/settings');
const paths = require('./lib/paths');
const appUpdate = require('./lib/app-update');

const production = app.isPackaged ? process.env.PEFT_DEV !== '1' : process.env.PEFT_DEV === '0';
const PAGES = { progress: path.join(__dirname, 'ui', 'progress.html'), engine: path.join(__dirname, 'ui', 'engine.html') };
let win = null;
let launcher = null;
let jobObject = null;
let settingsDir = null;
let settings = {};
let uiUrl = null;
let page = null; // 'progress' | 'engine' | 'ui'
let backlog = []; // events before the page listens
let windowReady = false;
let quitting = false;

function send(ev) {
  // an engine that cannot start any more: back to the progress window, which has the actions
  if (ev.event === 'engine' && ev.state === 'failed' && page !== 'progress') showPage('progress');
  if (windowReady && win && !win.isDestroyed()) win.webContents.send('peft:event', ev);
  else backlog.push(ev);
}

function showPage(name) {
  if (!win || win.isDestroyed()) return;
  page = name;
  windowReady = false;
  backlog = [];
  if (name === 'ui') win.loadURL(uiUrl);
  else win.loadFile(PAGES[name]);
}

function createWindow() {
  win = new BrowserWindow({
    width: 720, height: 640, minWidth: 320, minHeight: 360, resizable: true, show: false, title: 'PEFT Studio',
    backgroundColor: '#f4f5f7',
    webPreferences: { preload: path.join(__dirname, 'preload.js'), contextIsolation: true, sandbox: true, nodeIntegration: false },
  });
  win.once('ready-to-show', () => win.show());
  showPage('progress');
  win.on('close', onClose);
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

function buildMenu() {
  const template = [
    ...(process.platform === 'darwin' ? [{ role: 'appMenu' }] : []),
    { role: 'fileMenu' },
    { role: 'editMenu' },
    { role: 'viewMenu' },
    {
      label: 'Engine',
      submenu: [
        { label: 'Engine page', accelerator: 'CmdOrCtrl+E', click: () => showPage('engine') },
        ...(uiUrl ? [{ label: 'Back to PEFT Studio', click: () => showPage(launcher.engine ? 'ui' : 'progress') }] : []),
        { type: 'separator' },
        { label: 'Repair the engine', click: () => onAction(null, 'repair') },
        { label: 'Open the log', click: () => onAction(null, 'log') },
      ],
    },
    { role: 'windowMenu' },
  ];
  Menu.setApplicationMenu(Menu.buildFromTemplate(template));
}

async function start(choice, { showProgress = false } = {}) {
  if (showProgress) showPage('progress');
  const engine = await launcher.start(choice);
  afterStart(engine);
  return engine;
}

function afterStart(engine) {
  if (!engine) return;
  if (production) launcher.checkForUpdate().catch(() => {});
  if (production) startAppUpdates();
  // never a dead end: the app's UI when release.json names one, else the Engine page
  showPage(uiUrl ? 'ui' : 'engine');
}

async function onAction(_e, name, arg) {
  const choice = { ...launcher.choice };
  switch (name) {
    case 'retry': return start(choice);
    case 'cpu': // remembered like "Switch engine": the next launch does not try the engine that failed again
      settings = settingsFile.save(settingsDir, { variant: paths.cpuVariant() });
      return start({ ...choice, variant: paths.cpuVariant() });
    case 'auto': settings = settingsFile.save(settingsDir, { variant: null }); return start({ ...choice, variant: undefined, offlineDir: undefined });
    case 'switch': {
      if (typeof arg !== 'string' || !/^[a-z0-9][a-z0-9._-]*$/.test(arg)) return null;
      settings = settingsFile.save(settingsDir, { variant: arg });
      return start({ ...choice, variant: arg }, { showProgress: true });
    }
    case 'folder': {
      const r = await dialog.showOpenDialog(win, { title: 'Install the engine from a folder', properties: ['openDirectory'],
        message: 'Choose the USB stick or folder that holds the engine (its peft-backend-bundles folder)' });
      if (!r.canceled && r.filePaths[0]) return start({ ...choice, offlineDir: r.filePaths[0] }, { showProgress: page !== 'progress' });
      return null;
    }
    case 'location': {
      const r = await dialog.showOpenDialog(win, { title: 'Choose where PEFT Studio keeps its engine', properties: ['openDirectory', 'createDirectory'],
        message: 'Choose a folder on a disk with a few GB free; PEFT Studio makes its own folder inside it' });
      if (r.canceled || !r.filePaths[0]) return null;
      const loc = settingsFile.prepareLocation(r.filePaths[0]);
      if (!loc.ok) { await dialog.showMessageBox(win, { type: 'warning', message: 'That folder cannot hold the engine', detail: loc.problem }); return null; }
      settings = settingsFile.save(settingsDir, { cacheDir: loc.dir });
      launcher.settings = settings;
      return start(choice);
    }
    case 'repair': {
      showPage('progress');
      const engine = await launcher.repair();
      afterStart(engine);
      return engine;
    }
    case 'engine': return showPage('engine');
    case 'log': return shell.openPath(launcher.logFile);
    case 'cancel': return launcher.cancel();
    case 'restart': {
      showPage('progress');
      const engine = await launcher.restartToUpdate();
      afterStart(engine);
      return engine;
    }
    default: return null;
  }
}

async function onAsk(_e, name, arg) {
  switch (name) {
    case 'engine-info': return enginectl.info(launcher, { settings, uiUrl });
    case 'selftest-start': return enginectl.selfTestStart(launcher.engine, Number(arg) || 8);
    case 'selftest-poll': return enginectl.selfTestPoll(launcher.engine, String(arg));
    case 'gc': {
      const r = await launcher.query('gc');
      const c = r.events.find((e) => e.event === 'collected');
      return c ? { removed: c.removed, freed: c.freed } : { error: r.error ? r.error.message : 'gc did not answer' };
    }
    default: throw new Error(`unknown question ${name}`);
  }
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
  settingsDir = app.getPath('userData');
  settings = settingsFile.load(settingsDir);
  const offlineDir = production ? findBundlesFolder(app.getPath('exe')) : null;
  let bootstrap;
  if (production) {
    try {
      bootstrap = paths.bootstrapperPath(process.env, process.resourcesPath);
      uiUrl = release.uiUrl(release.read(bootstrap));
    } catch { /* the launcher reports a missing bootstrapper as an error event */ }
  }
  // the app's own UI when release.json names none (development): PEFT_UI_URL
  if (!uiUrl && process.env.PEFT_UI_URL) uiUrl = process.env.PEFT_UI_URL;
  launcher = new Launcher({
    mode: production ? 'production' : 'dev',
    bootstrap,
    uiVersion: app.getVersion(),
    env: process.env,
    appDir: paths.appDir(process.env, settingsDir),
    jobObject,
    settings,
    choice: { ...(offlineDir ? { offlineDir } : {}), ...(settings.variant ? { variant: settings.variant } : {}) },
  });
  launcher.on('event', send);
  launcher.on('event', (ev) => { if (ev.event === 'ready') lastReady = ev; });
  ipcMain.on('peft:ready', (e) => {
    if (!win || e.sender !== win.webContents) return;
    windowReady = true;
    for (const ev of backlog.splice(0)) send(ev);
  });
  ipcMain.on('peft:act', onAction);
  ipcMain.handle('peft:ask', onAsk);
  buildMenu();
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
