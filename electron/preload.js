'use strict';
// The only bridge between the window and the main process (contextIsolation on,
// sandboxed renderer): events in, action names out.
const { contextBridge, ipcRenderer } = require('electron');

const ACTIONS = new Set(['retry', 'cpu', 'folder', 'log', 'cancel', 'restart', 'wait',
  'location', 'repair', 'auto', 'engine', 'switch']);
// The Engine page's questions (answered by lib/enginectl.js through main.js)
const QUESTIONS = new Set(['engine-info', 'selftest-start', 'selftest-poll', 'gc']);

contextBridge.exposeInMainWorld('peft', {
  ...backendApi(), // an app's renderer: docs/CONTRACT.md §10.1
  onEvent(callback) {
    ipcRenderer.on('peft:event', (_e, ev) => callback(ev));
    ipcRenderer.send('peft:ready');
  },
  act(name, arg) {
    if (ACTIONS.has(name)) ipcRenderer.send('peft:act', name, typeof arg === 'string' ? arg : undefined);
  },
  ask(name, arg) {
    if (!QUESTIONS.has(name)) return Promise.reject(new Error(`unknown question ${name}`));
    return ipcRenderer.invoke('peft:ask', name, typeof arg === 'string' || typeof arg === 'number' ? arg : undefined);
  },
});

// An app's renderer: window.electronAPI (PEFT Studio's name) and window.peft both carry
// getBackendStatus, restartBackend, onBackendStatus (the `backend-status` event),
// getBackendUrl and getBackendToken (docs/CONTRACT.md §10.1).
contextBridge.exposeInMainWorld('electronAPI', backendApi());

function backendApi() {
  return {
    getBackendStatus: () => ipcRenderer.invoke('backend:get-status'),
    restartBackend: () => ipcRenderer.invoke('backend:restart'),
    onBackendStatus(callback) {
      const listener = (_e, status) => callback(status);
      ipcRenderer.on('backend-status', listener);
      return () => ipcRenderer.removeListener('backend-status', listener);
    },
    getBackendUrl: () => ipcRenderer.invoke('backend:get-status').then((s) => s.url),
    getBackendToken: () => ipcRenderer.invoke('backend:get-status').then((s) => s.token),
    mapWebSocketUrl: (url) => ipcRenderer.sendSync('backend:map-websocket', String(url)),
  };
}

// With a legacy origin (docs/CONTRACT.md §10.2), WebSockets the page opens on it are
// rewritten to the engine before they open: lib/ws-shim.js, whose source the main
// process hands over (a sandboxed preload cannot require local files), run in the page.
// Electron 35 and later run it synchronously (contextBridge.executeInMainWorld); older
// ones, or where that fails, through webFrame.executeJavaScript.
const legacyShim = ipcRenderer.sendSync('backend:legacy-shim');
if (legacyShim) {
  try {
    contextBridge.executeInMainWorld({ func: new Function(legacyShim) }); // eslint-disable-line no-new-func
  } catch {
    require('electron').webFrame.executeJavaScript(legacyShim);
  }
}
