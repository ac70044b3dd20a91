'use strict';
// The only bridge between the window and the main process (contextIsolation on,
// sandboxed renderer): events in, action names out.
const { contextBridge, ipcRenderer } = require('electron');

const ACTIONS = new Set(['retry', 'cpu', 'folder', 'log', 'cancel', 'restart', 'wait']);

contextBridge.exposeInMainWorld('peft', {
  onEvent(callback) {
    ipcRenderer.on('peft:event', (_e, ev) => callback(ev));
    ipcRenderer.send('peft:ready');
  },
  act(name) {
    if (ACTIONS.has(name)) ipcRenderer.send('peft:act', name);
  },
});
