#!/usr/bin/env node
'use strict';
// The launcher and supervisor with no window (docs/CONTRACT.md §9), for tests and outside checks.
//
//   node electron/headless.js
//
// Environment: the bootstrapper's own PEFT_* variables (passed through), plus
//   PEFT_BOOTSTRAP      the peft-bootstrap binary (default: packaged resources, else target/)
//   PEFT_UI_VERSION     the UI version to ask for (default: electron/package.json's)
//   PEFT_DEV=1          development mode: python backend/main.py, no bootstrapper
//   PEFT_APP_DIR        the launcher's folder: logs/, engine.json, launcher.json
//                       (default: <data dir>/PEFT Studio/app)
//   PEFT_UPDATE=0       skip the background `peft-bootstrap update` once the engine runs
//   PEFT_ENGINE_BOOT_TIMEOUT  seconds for the engine's first /health (default 60)
//   PEFT_RESTART_BASE_MS      first restart delay after a crash (default 1000; doubles)
//
// stdout: JSON lines only: every bootstrapper event unchanged, and `engine`, `update`,
// `rollback`. Launcher notes go to stderr. SIGTERM/SIGINT: stop the engine (SIGTERM
// to its process group, SIGKILL after 1 s), exit 0 once none of it is left. SIGHUP:
// restart through ensure (uses a staged update). Exit status when it cannot serve:
// the bootstrapper's exit code (2..7) when ensure failed, 1 when the engine failed.

const fs = require('node:fs');
const path = require('node:path');
const { Launcher } = require('./lib/launcher');
const paths = require('./lib/paths');

const env = process.env;
const uiVersion = env.PEFT_UI_VERSION || JSON.parse(fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8')).version;
const num = (v, d) => (v && Number.isFinite(Number(v)) ? Number(v) : d);

const out = (ev) => process.stdout.write(`${JSON.stringify(ev)}\n`);
const note = (t) => process.stderr.write(`headless: ${t}\n`);

const launcher = new Launcher({
  mode: env.PEFT_DEV === '1' ? 'dev' : 'production',
  bootstrap: env.PEFT_BOOTSTRAP ? path.resolve(env.PEFT_BOOTSTRAP) : undefined,
  uiVersion,
  env,
  appDir: paths.appDir(env),
  bootTimeoutMs: num(env.PEFT_ENGINE_BOOT_TIMEOUT, 60) * 1000,
  backoffBaseMs: num(env.PEFT_RESTART_BASE_MS, 1000),
});
launcher.on('log', note);

let exitCode = null;
let lastBootstrapError = null;
launcher.on('event', (ev) => {
  out(ev);
  if (ev.event === 'error') lastBootstrapError = ev;
  if (ev.event === 'engine' && ev.state === 'failed') finish(1);
});

let finishing = false;
async function finish(code) {
  if (finishing) return;
  finishing = true;
  exitCode = code;
  try {
    const r = await launcher.stop();
    if (r.how !== 'gone') note(`engine stopped (${r.how}, ${r.ms} ms)`);
  } catch (err) {
    note(`stopping the engine: ${err.message}`);
    exitCode = 1;
  }
  process.exit(exitCode);
}

process.on('SIGTERM', () => finish(0));
process.on('SIGINT', () => finish(0));
process.on('SIGHUP', () => {
  if (finishing) return;
  note('SIGHUP: restarting through ensure');
  launcher.restartToUpdate().catch((err) => note(err.message));
});

(async () => {
  const engine = await launcher.start();
  if (!engine) {
    if (launcher.quitting || finishing) return;
    return finish(lastBootstrapError ? lastBootstrapError.exit_code || 1 : 1);
  }
  if (launcher.mode === 'production' && env.PEFT_UPDATE !== '0') await launcher.checkForUpdate();
})().catch((err) => { note(`internal error: ${err.stack || err}`); finish(1); });
