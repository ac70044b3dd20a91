'use strict';
// The only bridge between a window and the main process (contextIsolation on,
// sandboxed renderer). docs/CONTRACT.md §10.1.
//
// - The progress and Engine pages: peft.onEvent (events in) and peft.act (action names out).
// - An app's renderer: window.electronAPI (PEFT Studio's name) and window.peft both carry
//   getBackendStatus, restartBackend, onBackendStatus (the `backend-status` event),
//   getBackendUrl and getBackendToken.
// - With a legacy origin configured (docs/CONTRACT.md §10.2), WebSockets the page opens on
//   that origin are rewritten to the engine before they open (lib/ws-shim.js, whose source
//   the main process hands over: a sandboxed preload cannot require local files).
const { contextBridge, ipcRenderer, webFrame } = require('electron');

const ACTIONS = new Set(['retry', 'cpu', 'folder', 'log', 'cancel', 'restart', 'wait']);

const backend = {
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

contextBridge.exposeInMainWorld('peft', {
  onEvent(callback) {
    ipcRenderer.on('peft:event', (_e, ev) => callback(ev));
    ipcRenderer.send('peft:ready');
  },
  act(name) {
    if (ACTIONS.has(name)) ipcRenderer.send('peft:act', name);
  },
  ...backend,
});
contextBridge.exposeInMainWorld('electronAPI', backend);

const shim = ipcRenderer.sendSync('backend:legacy-shim');
if (shim) webFrame.executeJavaScript(shim);
