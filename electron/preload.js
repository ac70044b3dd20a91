'use strict';
// The only bridge between the window and the main process (contextIsolation on,
// sandboxed renderer): events in, action names out.
const { contextBridge, ipcRenderer } = require('electron');

const ACTIONS = new Set(['retry', 'cpu', 'folder', 'log', 'cancel', 'restart', 'wait',
  'location', 'repair', 'auto', 'engine', 'switch']);
// The Engine page's questions (answered by lib/enginectl.js through main.js)
const QUESTIONS = new Set(['engine-info', 'selftest-start', 'selftest-poll', 'gc']);

contextBridge.exposeInMainWorld('peft', {
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
