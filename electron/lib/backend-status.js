'use strict';
// The renderer's view of the engine (docs/CONTRACT.md §10.1): what getBackendStatus()
// answers, what the `backend-status` event carries, and what restartBackend() does.
// PEFT Studio's renderer names; main.js only registers these handlers with ipcMain.
//
// BackendStatus folds the launcher's event stream (every bootstrapper event and the
// launcher's own `engine`, `update`, `rollback`) into one status object:
//
//   state    idle | installing | starting | running | exited | restarting | failed | error
//   url      the engine's base URL while running, else null
//   token    its bearer token while running, else null
//   version, variant, pid      of the engine (last known)
//   message, hint, code, reason, exit_code, log   why it is not running (failed / error)
//   progress {phase, done, total, resumed_from}   while installing
//   update   {state, version, variant}            the last background update event
//   rollback {from, to, reason}                   the last rollback, if any
//
// and emits 'change' (with a copy) whenever that object changes.

const { EventEmitter } = require('node:events');

const INSTALL_EVENTS = new Set(['hardware', 'verdict', 'selected', 'progress', 'retry', 'warning']);

function initial() {
  return { state: 'idle', url: null, token: null, version: null, variant: null, pid: null };
}

class BackendStatus extends EventEmitter {
  constructor() {
    super();
    this.status = initial();
  }

  /** A copy of the current status. */
  get() { return JSON.parse(JSON.stringify(this.status)); }

  /** Fold one launcher event in; returns true when the status changed (and 'change' was emitted). */
  feed(ev) {
    if (!ev || typeof ev !== 'object') return false;
    const next = this._next(this.status, ev);
    if (!next || JSON.stringify(next) === JSON.stringify(this.status)) return false;
    this.status = next;
    this.emit('change', this.get());
    return true;
  }

  _next(s, ev) {
    const keep = { update: s.update, rollback: s.rollback };
    const base = (state, extra = {}) => clean({
      state, url: null, token: null, version: s.version, variant: s.variant, pid: s.pid, ...keep, ...extra,
    });
    switch (ev.event) {
      case 'engine':
        switch (ev.state) {
          case 'starting': return base('starting', { version: ev.version ?? s.version, variant: ev.variant ?? s.variant, pid: ev.pid ?? null });
          case 'running': return base('running', { url: ev.url, token: ev.token, version: ev.version ?? s.version, variant: ev.variant ?? s.variant, pid: ev.pid ?? s.pid });
          case 'exited': return base('exited', { exit_code: ev.code ?? null, signal: ev.signal ?? null });
          case 'restarting': return base('restarting', { in_ms: ev.in_ms, attempt: ev.attempt });
          case 'failed': return base('failed', { message: ev.message, log: ev.log });
          default: return null;
        }
      case 'ready':
        return base('starting', { version: ev.version, variant: ev.variant, pid: null });
      case 'error':
        return base('error', { message: ev.message, hint: ev.hint, code: ev.code, reason: ev.reason, exit_code: ev.exit_code });
      case 'update':
        return clean({ ...s, update: clean({ state: ev.state, version: ev.version, variant: ev.variant, message: ev.message }) });
      case 'rollback':
        return clean({ ...s, rollback: { from: ev.from, to: ev.to, reason: ev.reason } });
      default:
        if (!INSTALL_EVENTS.has(ev.event) || s.state === 'running') return null;
        if (ev.event === 'progress') {
          return base('installing', { progress: clean({ phase: ev.phase, done: ev.done, total: ev.total, resumed_from: ev.resumed_from }) });
        }
        if (ev.event === 'selected') return base('installing', { version: ev.version, variant: ev.variant, progress: s.progress });
        return s.state === 'installing' ? null : base('installing');
    }
  }
}

/** Drops undefined fields (so JSON comparison and IPC copies agree). */
function clean(o) {
  const out = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out;
}

/**
 * The main-process side of getBackendStatus / restartBackend.
 *
 *   launcher   has restartToUpdate() (stop the engine, start through ensure) and `quitting`
 *   status     a BackendStatus fed with the launcher's events
 *   allow      (senderUrl) => boolean: only the app's own pages get the status (it holds
 *              the token); others are refused with an Error
 *
 * restart() while a restart runs returns the same promise (one restart, not two), and
 * resolves with the status once the start has finished (running, failed or error).
 */
class BackendControl {
  constructor({ launcher, status, allow = () => true }) {
    this.launcher = launcher;
    this.status = status;
    this.allow = allow;
    this.restarting = null;
  }

  _check(senderUrl) {
    if (!this.allow(senderUrl)) {
      throw new Error(`the page ${senderUrl || '(unknown)'} is not one of this app's pages; it may not use the engine`);
    }
  }

  getStatus(senderUrl) {
    this._check(senderUrl);
    return this.status.get();
  }

  restart(senderUrl) {
    this._check(senderUrl);
    if (this.launcher.quitting) return Promise.reject(new Error('the app is quitting; the engine is not restarted'));
    if (!this.restarting) {
      this.restarting = (async () => {
        try {
          await this.launcher.restartToUpdate();
        } finally {
          this.restarting = null;
        }
        return this.status.get();
      })();
    }
    return this.restarting;
  }

  /** ipcMain.handle channel -> handler(event). */
  handlers() {
    return {
      'backend:get-status': (e) => this.getStatus(senderUrl(e)),
      'backend:restart': (e) => this.restart(senderUrl(e)),
    };
  }
}

/** The URL of the page that sent an IPC message (its frame's, else its webContents'). */
function senderUrl(e) {
  if (e && e.senderFrame && e.senderFrame.url) return e.senderFrame.url;
  if (e && e.sender && typeof e.sender.getURL === 'function') return e.sender.getURL();
  return '';
}

module.exports = { BackendStatus, BackendControl, senderUrl };
