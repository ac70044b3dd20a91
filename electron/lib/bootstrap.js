'use strict';
// Runs one `peft-bootstrap <command> --json` and reads its JSON lines.
//
// Every event is handed to `onEvent` unchanged as it arrives. The returned
// `run.done` resolves (never rejects) to
//   { code, signal, events, ready, error, stderrTail, cancelled }
// where `ready` is the last `ready` event, `error` the last `error` event, or one
// the launcher words itself when the binary could not start or died without one
// (so the window always has an exit code and a message). `run.cancel()` sends
// SIGTERM: the bootstrapper stops, keeping its partial download for the next run.

const { spawn } = require('node:child_process');
const { JsonLines } = require('./jsonlines');

const CODES = { 1: 'internal', 2: 'usage', 3: 'network', 4: 'integrity', 5: 'no_variant', 6: 'storage', 7: 'busy' };
const STDERR_TAIL = 8192;

function runBootstrap(bin, args, { env = process.env, onEvent = () => {}, onStderr = () => {}, onGarbage } = {}) {
  const events = [];
  let stderrTail = '';
  let cancelled = false;
  let child;
  const done = new Promise((resolve) => {
    try {
      child = spawn(bin, [...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    } catch (err) {
      resolve(failed(-1, null, startError(bin, err)));
      return;
    }
    const reader = new JsonLines({
      onEvent: (ev) => { events.push(ev); onEvent(ev); },
      onGarbage: onGarbage || ((text, why) => onStderr(`[stdout garbage: ${why}] ${text}\n`)),
    });
    child.stdout.on('data', (c) => reader.push(c));
    child.stderr.on('data', (c) => {
      const s = c.toString();
      stderrTail = (stderrTail + s).slice(-STDERR_TAIL);
      onStderr(s);
    });
    let spawnError = null;
    child.on('error', (err) => { spawnError = err; });
    child.on('close', (code, signal) => {
      reader.end();
      if (spawnError) return resolve(failed(-1, null, startError(bin, spawnError)));
      resolve(failed(code, signal, null));
    });
  });

  function failed(code, signal, forcedError) {
    const ready = [...events].reverse().find((e) => e.event === 'ready') || null;
    let error = forcedError || [...events].reverse().find((e) => e.event === 'error') || null;
    if (!error && code !== 0) {
      const exit = code == null ? 1 : code;
      error = {
        event: 'error', code: CODES[exit] || 'internal', exit_code: exit,
        message: cancelled ? 'cancelled' : signal
          ? `peft-bootstrap was stopped by ${signal}`
          : `peft-bootstrap exited with status ${exit} without saying why`,
        hint: lastLine(stderrTail) || undefined,
        launcher: true,
      };
      if (!cancelled) onEvent(error);
    } else if (forcedError) {
      onEvent(forcedError);
    }
    return { code, signal, events, ready: code === 0 ? ready : null, error: code === 0 ? null : error, stderrTail, cancelled };
  }

  return {
    done,
    get pid() { return child ? child.pid : undefined; },
    cancel() {
      cancelled = true;
      if (child && child.exitCode == null && child.signalCode == null) child.kill('SIGTERM');
    },
  };
}

function startError(bin, err) {
  return {
    event: 'error', code: 'internal', exit_code: 1, launcher: true,
    message: `cannot run the bootstrapper ${bin}: ${err.message}`,
    hint: 'reinstall PEFT Studio, or set PEFT_BOOTSTRAP to a working peft-bootstrap',
  };
}

function lastLine(text) {
  const lines = text.trim().split('\n').filter(Boolean);
  return lines.length ? lines[lines.length - 1].slice(0, 500) : '';
}

/** The flags a launch passes through: what the user chose in the window. */
function choiceArgs({ variant, offlineDir } = {}) {
  const args = [];
  if (variant) args.push('--variant', variant);
  if (offlineDir) args.push('--offline-dir', offlineDir);
  return args;
}

module.exports = { runBootstrap, choiceArgs, CODES };
