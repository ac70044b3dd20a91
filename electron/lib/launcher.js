'use strict';
// The launcher: from "the app starts" to "the UI has a base URL and a token".
//
// production: peft-bootstrap ensure --json --ui-version <app> [--variant ID]
//             [--offline-dir DIR]; every event is forwarded; on `ready` the engine
//             is started with the `env` it names, supervised (supervisor.js).
// dev:        python backend/main.py (the dev venv, else python3), no bootstrapper.
//
// All events go out through `emit('event', ev)`: the bootstrapper's unchanged, and
// the launcher's own `engine`, `update`, `rollback` (docs/CONTRACT.md §9).
//
// Rollback: <app dir>/launcher.json remembers the last install whose engine passed
// /health (`lastGood`). If `ensure` hands over another install (an update staged by
// `update` was switched in) and its engine fails its first health check, we run
// `peft-bootstrap rollback --reason "..." --json` and start the `ready` it prints.
//
// Repair: when the engine of the install `ensure` handed over (the one that worked
// before, or a first install) fails to start, we run `peft-bootstrap verify --repair
// --json` once (it re-hashes every file and rewrites the damaged ones from the
// cheapest source), emit `{"event":"repair","state":"running|done|failed",...}` and
// start it again; only then does the window show an error.
//
// Arguments: only what the person chose (variant, offline folder, another location
// for the engine). What release.json beside the bootstrapper says (repository,
// channel, mirrors, keys) is never passed: the bootstrapper reads it itself.

const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const { runBootstrap, choiceArgs } = require('./bootstrap');
const { settingsArgs } = require('./settings');
const { Supervisor } = require('./supervisor');
const record = require('./record');
const paths = require('./paths');

class Launcher extends EventEmitter {
  constructor({ mode = 'production', bootstrap, uiVersion, env = process.env, appDir, bootTimeoutMs, backoffBaseMs,
    jobObject, choice = {}, settings = {} } = {}) {
    super();
    this.mode = mode;
    this.bootstrapBin = bootstrap;
    this.uiVersion = uiVersion;
    this.env = env;
    this.appDir = appDir;
    this.choice = choice;
    this.settings = settings; // { cacheDir } (lib/settings.js): passed to every bootstrapper command
    this.supervisor = new Supervisor({ appDir, bootTimeoutMs, backoffBaseMs, jobObject });
    this.supervisor.on('engine', (ev) => this.emit('event', ev));
    this.run = null;       // the bootstrapper run in the foreground (ensure/rollback)
    this.updateRun = null; // the background update
    this.leftoverChecked = false;
    this.quitting = false;
  }

  get logFile() { return this.supervisor.logFile; }
  get engine() { return this.supervisor.engine; }

  _log(text) { this.emit('log', text); this.supervisor.log.line(`launcher: ${text}`); }

  _bin() {
    if (!this.bootstrapBin) this.bootstrapBin = paths.bootstrapperPath(this.env);
    return this.bootstrapBin;
  }

  _state() {
    try { return JSON.parse(fs.readFileSync(path.join(this.appDir, 'launcher.json'), 'utf8')); } catch { return {}; }
  }

  _saveState(patch) {
    const file = path.join(this.appDir, 'launcher.json');
    fs.mkdirSync(this.appDir, { recursive: true });
    fs.writeFileSync(`${file}.tmp`, JSON.stringify({ ...this._state(), ...patch }, null, 2));
    fs.renameSync(`${file}.tmp`, file);
  }

  async _bootstrap(args, { forward = true } = {}) {
    let bin;
    try {
      bin = this._bin();
    } catch (err) {
      const ev = { event: 'error', code: 'internal', exit_code: 1, message: err.message, launcher: true,
        hint: 'set PEFT_BOOTSTRAP, or reinstall PEFT Studio' };
      if (forward) this.emit('event', ev);
      return { result: { code: 1, error: ev, ready: null, events: [ev] } };
    }
    this.supervisor.log.line(`launcher: ${bin} ${[...args, '--json'].join(' ')}`);
    const run = runBootstrap(bin, args, {
      env: this.env,
      onEvent: (ev) => {
        // the window shows plain words; the whole error (flags, variables, paths) goes to the log
        if (ev.event === 'error' || ev.event === 'retry') this.supervisor.log.line(`peft-bootstrap ${args[0]}: ${JSON.stringify(ev)}`);
        if (forward) this.emit('event', ev);
      },
      onStderr: (s) => this.supervisor.log.write(s),
    });
    this._fgRun = run;
    const result = await run.done;
    if (this._fgRun === run) this._fgRun = null;
    return { run, result };
  }

  /** Stop a leftover engine of an earlier launch (once per launcher). */
  async _leftover() {
    if (this.leftoverChecked) return;
    this.leftoverChecked = true;
    const r = await record.stopLeftover(this.appDir, (t) => this._log(t));
    this.leftover = r;
  }

  _devSpec() {
    return { command: paths.devPython(this.env), args: [paths.backendMain], env: this.env, cwd: paths.REPO_DIR };
  }

  _specOf(ready) {
    return { command: ready.executable, args: [], env: { ...this.env, ...(ready.env || {}) }, cwd: ready.dir,
      version: ready.version, variant: ready.variant, dir: ready.dir };
  }

  /**
   * Run ensure (production) and start the engine. Resolves to the engine, or null
   * when the bootstrapper failed (its `error` event was forwarded: the window shows
   * the actions) or the engine could not be started (an `engine` `failed` event).
   */
  async start(choice = this.choice) {
    this.choice = choice;
    this.quitting = false;
    // "Try again" while an ensure still runs (e.g. after the stall notice): stop that
    // one first, or the new one would wait for its cache lock. Its partial download stays.
    const previous = this._fgRun;
    if (previous) { previous.cancel(); await previous.done; }
    if (this.supervisor.engine) await this.supervisor.stop();
    await this._leftover();
    if (this.mode === 'dev') {
      const problem = paths.devPythonProblem(this.env);
      if (problem) { this._log(problem); this.supervisor._emit('failed', { message: problem, log: this.logFile }); return null; }
      return this._startSpec(this._devSpec(), null);
    }
    const args = ['ensure', ...(this.uiVersion ? ['--ui-version', this.uiVersion] : []), ...this._args(choice)];
    const { result } = await this._bootstrap(args);
    if (!result.ready) return null;
    this.ready = result.ready;
    return this._startSpec(this._specOf(result.ready), result.ready);
  }

  /** The flags every bootstrapper command gets: the person's choices, never what release.json says. */
  _args(choice = this.choice) {
    return [...choiceArgs(choice), ...settingsArgs(this.settings)];
  }

  async _startSpec(spec, ready, { repaired = false } = {}) {
    try {
      const engine = await this.supervisor.start(spec);
      if (ready) this._saveState({ lastGood: { version: ready.version, variant: ready.variant, dir: ready.dir } });
      return engine;
    } catch (err) {
      if (this.quitting) return null;
      const lastGood = this._state().lastGood;
      if (ready && lastGood && lastGood.dir !== ready.dir) return this._rollback(ready, lastGood, err);
      if (ready && !repaired) return this._repairThenStart(ready, err);
      this.supervisor._emit('failed', { message: err.message, log: this.logFile });
      return null;
    }
  }

  /**
   * `peft-bootstrap verify --repair --json`: rewrites the current install's damaged or
   * missing files. Emits `repair` events; resolves to the `verified` event or null.
   */
  async _verifyRepair(why) {
    this._log(`repairing the engine: ${why}`);
    this.emit('event', { event: 'repair', state: 'running', reason: why });
    const { result } = await this._bootstrap(['verify', '--repair', ...this._args()], { forward: false });
    for (const ev of result.events) this.supervisor.log.line(`verify --repair: ${JSON.stringify(ev)}`);
    const verified = result.events.find((e) => e.event === 'verified');
    if (result.code !== 0 || !verified || !verified.ok) {
      const message = result.error ? result.error.message
        : verified ? `the engine still has damaged files after the repair: ${(verified.problems || []).slice(0, 5).join(', ')}`
          : `verify --repair exited with status ${result.code}`;
      this.emit('event', { event: 'repair', state: 'failed', message, ...(result.error ? { reason: result.error.reason, exit_code: result.error.exit_code } : {}) });
      return null;
    }
    const repaired = (verified.repaired || []).map((r) => r.path);
    this._log(`repaired ${repaired.length} file(s) of ${verified.version} (${verified.variant}); ${verified.fetched || 0} bytes fetched`);
    this.emit('event', { event: 'repair', state: 'done', version: verified.version, variant: verified.variant, repaired, fetched: verified.fetched || 0 });
    return verified;
  }

  async _repairThenStart(ready, err) {
    const verified = await this._verifyRepair(`the engine ${ready.version} (${ready.variant}) did not start: ${err.message}`);
    if (this.quitting) return null;
    if (!verified) {
      this.supervisor._emit('failed', { message: `${err.message}; the repair did not succeed either (details in the log)`, log: this.logFile });
      return null;
    }
    return this._startSpec(this._specOf(ready), ready, { repaired: true });
  }

  /** "Repair the engine" (window, Engine page): stop it, verify --repair, start through ensure. */
  async repair() {
    const previous = this._fgRun;
    if (previous) { previous.cancel(); await previous.done; }
    if (this.supervisor.engine) await this.supervisor.stop();
    if (this.mode === 'dev') return this.start(this.choice);
    const verified = await this._verifyRepair('asked from the window');
    if (!verified && this.quitting) return null;
    return this.start(this.choice);
  }

  /** Run a bootstrapper command for the Engine page (status, detect, gc): resolves to its result, events not forwarded. */
  async query(cmd, extra = []) {
    if (this.mode === 'dev') return { code: 1, events: [], error: { message: 'development mode: no bootstrapper' } };
    const { result } = await this._bootstrap([cmd, ...extra, ...this._args()], { forward: false });
    return result;
  }

  async _rollback(ready, lastGood, err) {
    const reason = `the engine ${ready.version} (${ready.variant}) failed its first health check: ${err.message}`;
    this._log(`rolling back: ${reason}`);
    const { result } = await this._bootstrap(['rollback', '--reason', reason, ...settingsArgs(this.settings)]);
    const back = result.ready;
    const rolled = result.events.find((e) => e.event === 'rolled_back');
    if (!back) {
      this.supervisor._emit('failed', { message: `${reason}; and the rollback failed: ${result.error ? result.error.message : 'no ready event'}`, log: this.logFile });
      return null;
    }
    this.emit('event', { event: 'rollback', from: rolled ? rolled.from : path.basename(ready.dir), to: rolled ? rolled.to : path.basename(back.dir), reason });
    try {
      const engine = await this.supervisor.start(this._specOf(back));
      this._saveState({ lastGood: { version: back.version, variant: back.variant, dir: back.dir } });
      return engine;
    } catch (err2) {
      this.supervisor._emit('failed', { message: `after rolling back to ${back.version}: ${err2.message}`, log: this.logFile });
      return null;
    }
  }

  /** Stop the foreground bootstrapper run (the partial download resumes next time). */
  cancel() {
    for (const r of this._runs()) r.cancel();
  }

  _runs() { return [this._fgRun, this.updateRun].filter(Boolean); }

  /** `peft-bootstrap update --json` in the background; resolves to the final update event. */
  async checkForUpdate() {
    if (this.mode === 'dev' || this.updateRun) return null;
    const say = (state, extra = {}) => { const ev = { event: 'update', state, ...extra }; this.lastUpdate = ev; this.emit('event', ev); return ev; };
    say('checking');
    let bin;
    try { bin = this._bin(); } catch (err) { return say('failed', { message: err.message }); }
    const run = runBootstrap(bin, ['update', ...(this.uiVersion ? ['--ui-version', this.uiVersion] : []), ...this._args()], {
      env: this.env, onStderr: (s) => this.supervisor.log.write(s),
    });
    this.updateRun = run;
    const result = await run.done;
    this.updateRun = null;
    const staged = result.events.find((e) => e.event === 'staged');
    const upToDate = result.events.find((e) => e.event === 'up_to_date');
    if (result.code === 0 && staged) { this.staged = staged; return say('staged', { version: staged.version, variant: staged.variant }); }
    if (result.code === 0 && upToDate) return say('up_to_date', { version: upToDate.version, variant: upToDate.variant });
    const why = result.cancelled ? 'cancelled' : result.error ? result.error.message : `update exited with status ${result.code}`;
    return say('failed', { message: why, exit_code: result.code });
  }

  /** "Restart to use it": stop the engine, then start through ensure (which switches to the staged install). */
  async restartToUpdate() {
    await this.supervisor.stop();
    return this.start(this.choice);
  }

  busy() { return this.supervisor.busy(); }

  /** Quit: cancel bootstrapper runs, stop the engine; resolves when no engine process is left. */
  async stop() {
    this.quitting = true;
    this.cancel();
    return this.supervisor.stop();
  }
}

module.exports = { Launcher };
