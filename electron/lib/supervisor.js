'use strict';
// Keeps one engine alive and never leaves one behind.
//
// - start(spec) starts the engine (engine.js), records it (record.js) and emits
//   `engine` events: starting, running (each time it passed /health), exited,
//   restarting, failed.
// - After an unexpected exit it restarts the same spec after 1, 2, 4, 8, 16 s
//   (`backoffBaseMs` doubles); a 6th crash within 10 minutes (more than
//   `maxRestarts` restarts in `windowMs`) ends in state `failed` and no more tries.
// - stop() (quit): SIGTERM to the engine's process group, SIGKILL after 1 s, and
//   resolves only when no process of it is left; the record is removed.
// - busy(): whether a job is queued or running (the window asks before quitting).
// Engine output goes to <app dir>/logs/engine.log (rotating).

const { EventEmitter } = require('node:events');
const path = require('node:path');
const { startEngine, EngineStartError } = require('./engine');
const { RotatingLog } = require('./logs');
const record = require('./record');

class Supervisor extends EventEmitter {
  constructor({ appDir, bootTimeoutMs, backoffBaseMs = 1000, maxRestarts = 5, windowMs = 10 * 60_000, jobObject } = {}) {
    super();
    this.appDir = appDir;
    this.log = new RotatingLog(path.join(appDir, 'logs'), 'engine');
    this.bootTimeoutMs = bootTimeoutMs;
    this.backoffBaseMs = backoffBaseMs;
    this.maxRestarts = maxRestarts;
    this.windowMs = windowMs;
    this.jobObject = jobObject;
    this.engine = null;
    this.spec = null;
    this.restarts = []; // times of restarts in the window
    this.state = 'idle';
    this.timer = null;
    this.stopped = false;
  }

  get logFile() { return this.log.file; }

  _emit(state, extra = {}) {
    this.state = state;
    const e = this.engine;
    const ev = { event: 'engine', state, ...(e ? { pid: e.pid } : {}), ...extra };
    if (state === 'running' && e) Object.assign(ev, { url: e.url, token: e.token, version: this.spec.version || e.version, variant: this.spec.variant || e.variant });
    this.emit('engine', ev);
  }

  /** Start an engine for `spec` ({command, args, env, cwd, version, variant}); rejects with EngineStartError. */
  async start(spec) {
    this.stopped = false;
    this.spec = spec;
    this.engine = null;
    this._emit('starting', { version: spec.version, variant: spec.variant });
    this.log.line(`starting ${spec.command} ${(spec.args || []).join(' ')} (${spec.version || '?'} ${spec.variant || '?'})`);
    let engine;
    try {
      engine = await startEngine({ command: spec.command, args: spec.args, env: spec.env, cwd: spec.cwd, log: this.log,
        bootTimeoutMs: this.bootTimeoutMs, jobObject: this.jobObject });
    } catch (err) {
      this.log.line(`start failed: ${err.message}`);
      throw err;
    }
    if (this.stopped) { await engine.stop(); throw new EngineStartError('stopped', 'the launcher is quitting'); }
    this.engine = engine;
    record.writeRecord(this.appDir, { pid: engine.pid, executable: spec.command, port: engine.port });
    this.log.line(`running: pid ${engine.pid} on ${engine.url} (${engine.bootMs} ms to healthy)`);
    this._emit('running');
    engine.exited.then((exit) => this._onExit(engine, exit));
    return engine;
  }

  _onExit(engine, exit) {
    if (engine !== this.engine || engine.stopping || this.stopped) return;
    record.clearRecord(this.appDir, engine.pid);
    const how = exit.signal ? `signal ${exit.signal}` : `status ${exit.code}`;
    this.log.line(`engine ${engine.pid} exited unexpectedly (${how})`);
    this._emit('exited', { code: exit.code, signal: exit.signal });
    this._crashed(how);
  }

  _crashed(how) {
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < this.windowMs);
    if (this.restarts.length >= this.maxRestarts) {
      const message = `the engine stopped ${this.restarts.length + 1} times in ${Math.round(this.windowMs / 60000)} minutes (last: ${how}); not restarting it again`;
      this.log.line(message);
      this._emit('failed', { message, log: this.log.file });
      return;
    }
    const delay = this.backoffBaseMs * 2 ** this.restarts.length;
    this.restarts.push(now);
    this._emit('restarting', { in_ms: delay, attempt: this.restarts.length });
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.stopped) return;
      this.start(this.spec).catch((err) => {
        // a restart that does not come up counts like a crash
        if (this.stopped) return;
        this.engine = null;
        this._crashed(`the restart failed: ${err.message}`);
      });
    }, delay);
  }

  /** Is a job queued or running? (the window asks before quitting). */
  async busy() {
    const e = this.engine;
    if (!e || !e.running) return false;
    try {
      const r = await e.get('/jobs', { timeoutMs: 2000 });
      return r.status === 200 && Array.isArray(r.body) && r.body.some((j) => j.state === 'queued' || j.state === 'running');
    } catch {
      return false;
    }
  }

  /** Stop for good: no restart, no engine left. Resolves to stopGroup's result. */
  async stop() {
    this.stopped = true;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    const e = this.engine;
    if (!e) return { how: 'gone', ms: 0 };
    const result = await e.stop();
    record.clearRecord(this.appDir, e.pid);
    this.log.line(`stopped engine ${e.pid} (${result.how}, ${result.ms} ms)`);
    this._emit('exited', { code: e.exit ? e.exit.code : null, signal: e.exit ? e.exit.signal : null });
    this.engine = null;
    return result;
  }
}

module.exports = { Supervisor };
