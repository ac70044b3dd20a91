'use strict';
// Everything the main process does for an app's renderer (docs/CONTRACT.md §10), in one
// call that main.js makes with Electron's objects; tested with stand-ins for them.
//
//   - getBackendStatus / restartBackend (ipcMain.handle 'backend:get-status',
//     'backend:restart') and the `backend-status` event to every app page;
//   - the legacy origin: webRequest listeners on the session (HTTP redirect, token,
//     Origin, CORS answers) and the synchronous 'backend:map-websocket' /
//     'backend:legacy-shim' channels the preload uses for WebSockets.

const path = require('node:path');
const { BackendStatus, BackendControl, senderUrl } = require('./backend-status');
const { OriginMap, attachToSession, legacyOriginsFrom, originOf } = require('./origin-map');
const { shimScript } = require('./ws-shim');
const release = require('./release');

/**
 * release.json (docs/CONTRACT.md §4.6) as an object: {} when the file is absent. A present
 * but invalid file throws, naming its full path and the problem.
 */
function readReleaseConfig(file) {
  const r = release.readFile(path.resolve(file));
  if (r.problem) throw new Error(r.problem);
  return r.config || {};
}

/** The origins of the app's own pages besides file://: ui_url's (http/https), app_origins, PEFT_UI_URL's. */
function appOriginsFrom({ env = {}, config = {} } = {}) {
  const out = [];
  const add = (u) => { const o = typeof u === 'string' && /^https?:\/\//.test(u) ? originOf(u) : null; if (o && !out.includes(o)) out.push(o); };
  add(config.ui_url);
  add(env.PEFT_UI_URL);
  const listed = config.app_origins;
  if (listed != null) {
    if (!Array.isArray(listed) || listed.some((x) => typeof x !== 'string')) throw new Error('app_origins must be a list of origins such as "http://localhost:5173"');
    listed.forEach(add);
  }
  return out;
}

/**
 * The environment the engine is started with so that its Origin check (the runtime
 * wrapper's PEFT_ALLOWED_ORIGINS, docs/CONTRACT.md §8.2) accepts the app's own pages when
 * they call the engine directly (getBackendStatus().url): the http(s) origins of
 * appOriginsFrom(), plus `app_origins` entries that are not URLs (`null`, what Chromium
 * sends from a file:// page; `app://studio`), and `null` with a legacy origin (below).
 * Merged with a PEFT_ALLOWED_ORIGINS already set. {} when there is nothing to add.
 */
function engineOriginsEnv({ env = {}, config = {} } = {}) {
  const list = (env.PEFT_ALLOWED_ORIGINS || '').split(',').map((x) => x.trim()).filter(Boolean);
  const add = (o) => { if (o && !list.includes(o)) list.push(o); };
  let origins = [];
  try { origins = appOriginsFrom({ env, config }); } catch { /* a bad app_origins is reported by setupRendererBridge */ }
  for (const o of origins) add(new URL(o).origin); // as the browser writes it: no default port
  for (const o of Array.isArray(config.app_origins) ? config.app_origins : []) if (typeof o === 'string' && !/^https?:\/\//.test(o)) add(o.trim());
  // With a legacy origin the main process sends the engine's own Origin; `null` (a file://
  // page's) is accepted besides, in case an Electron version does not apply that header
  // change to a WebSocket handshake. The token is still required.
  let legacy = [];
  try { legacy = legacyOriginsFrom({ env, config }); } catch { /* reported by setupRendererBridge */ }
  if (legacy.length) add('null');
  return list.length ? { PEFT_ALLOWED_ORIGINS: list.join(',') } : {};
}

/**
 * @param {object} o
 * @param {EventEmitter} o.launcher  the Launcher ('event' stream, restartToUpdate, quitting)
 * @param {object} o.ipcMain         Electron's ipcMain (handle, on)
 * @param {object} o.session         the windows' session (webRequest); only used with a legacy origin
 * @param {Function} o.broadcast     (channel, payload, isAppPage) => void: send to every window
 * @param {object} [o.config]        release.json's object
 * @param {object} [o.env]
 */
function setupRendererBridge({ launcher, ipcMain, session, broadcast, config = {}, env = process.env }) {
  const map = new OriginMap({ legacy: legacyOriginsFrom({ env, config }), appOrigins: appOriginsFrom({ env, config }) });
  const status = new BackendStatus();
  launcher.on('event', (ev) => {
    if (ev && ev.event === 'engine') map.setEngine(ev.state === 'running' ? ev : null);
    status.feed(ev);
  });
  status.on('change', (s) => broadcast('backend-status', s, (url) => map.isAppPage(url)));
  const control = new BackendControl({ launcher, status, allow: (url) => map.isAppPage(url) });
  for (const [channel, fn] of Object.entries(control.handlers())) ipcMain.handle(channel, fn);
  ipcMain.on('backend:map-websocket', (e, url) => { e.returnValue = map.mapWebSocket(String(url), senderUrl(e)); });
  ipcMain.on('backend:legacy-shim', (e) => { e.returnValue = map.enabled && map.isAppPage(senderUrl(e)) ? shimScript() : ''; });
  if (map.enabled) attachToSession(session, map);
  return { map, status, control };
}

module.exports = { setupRendererBridge, readReleaseConfig, appOriginsFrom, engineOriginsEnv };
