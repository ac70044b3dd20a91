'use strict';
// Start one engine and prove it is up (docs/CONTRACT.md §8).
//
//   <executable> --host 127.0.0.1 --port 0
// with PEFT_ENGINE_TOKEN (fresh per start), PEFT_PARENT_FD=0 (its stdin is a pipe we
// hold and never write: when this process dies, however, the engine reads EOF and
// exits) and PEFT_PARENT_PID. On POSIX it is spawned detached, i.e. in its own
// process group, so stop() reaches everything it started; on Windows it is put in a
// Job Object (winjob.js). The port comes from its one `listening` line; then
// GET /health is polled until 200, all within `bootTimeoutMs`. stdout after that
// line and all of stderr go to the log.

const crypto = require('node:crypto');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { JsonLines } = require('./jsonlines');
const proc = require('./proc');

const DEFAULT_BOOT_TIMEOUT_MS = 60_000;

class EngineStartError extends Error {
  constructor(reason, message, extra = {}) {
    super(message);
    this.reason = reason; // 'spawn' | 'exited' | 'timeout'
    Object.assign(this, extra);
  }
}

function newToken() { return crypto.randomBytes(32).toString('base64url'); }

/** One GET with a deadline; resolves { status, body } or rejects. */
function httpGet(url, { token, timeoutMs = 2000, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, {
      timeout: timeoutMs,
      headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(body); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: json, text: body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Start an engine. `command`: the executable (or python), `args`: before the
 * --host/--port flags (e.g. backend/main.py). Resolves to an Engine once healthy;
 * rejects with EngineStartError (the process is gone by then).
 */
async function startEngine({ command, args = [], env = process.env, cwd, log, bootTimeoutMs = DEFAULT_BOOT_TIMEOUT_MS,
  token = newToken(), jobObject } = {}) {
  const t0 = Date.now();
  const write = log ? (s) => log.write(s) : () => {};
  let child;
  try {
    child = spawn(command, [...args, '--host', '127.0.0.1', '--port', '0'], {
      cwd,
      env: { ...env, PEFT_ENGINE_TOKEN: token, PEFT_PARENT_FD: '0', PEFT_PARENT_PID: String(process.pid) },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: !proc.IS_WIN,
      windowsHide: true,
    });
  } catch (err) {
    throw new EngineStartError('spawn', `cannot start the engine ${command}: ${err.message}`);
  }
  const engine = new Engine(child, token, command);
  if (proc.IS_WIN && jobObject) jobObject.assign(child.pid);
  child.stdin.on('error', () => {}); // the engine closing its stdin is not our error
  child.stderr.on('data', (c) => write(c.toString()));

  let listening = null;
  let onListening;
  const gotListening = new Promise((r) => { onListening = r; });
  const reader = new JsonLines({
    onEvent: (ev) => {
      if (!listening && ev.event === 'listening') { listening = ev; onListening(ev); } else write(`${JSON.stringify(ev)}\n`);
    },
    onGarbage: (text) => write(`${text}\n`),
  });
  child.stdout.on('data', (c) => reader.push(c));

  const failWith = async (reason, message) => {
    await engine.stop();
    const tail = log ? ` (engine log: ${log.file})` : '';
    throw new EngineStartError(reason, message + tail, { pid: child.pid, exit: engine.exit });
  };
  const timeLeft = () => bootTimeoutMs - (Date.now() - t0);
  const timer = (ms) => new Promise((r) => setTimeout(() => r('timeout'), Math.max(0, ms)));

  const first = await Promise.race([gotListening, engine.exited.then(() => 'exited'), timer(timeLeft())]);
  if (first === 'exited') {
    const e = engine.exit;
    return failWith('exited', `the engine exited before it listened (${e.signal ? `signal ${e.signal}` : `status ${e.code}`})`);
  }
  if (first === 'timeout') return failWith('timeout', `the engine did not say where it listens within ${bootTimeoutMs / 1000} s`);
  engine.port = listening.port;
  engine.url = `http://127.0.0.1:${listening.port}`;
  engine.version = listening.version;
  engine.variant = listening.variant;

  let lastProblem = 'no answer yet';
  while (timeLeft() > 0) {
    if (engine.exit) {
      const e = engine.exit;
      return failWith('exited', `the engine exited before /health answered (${e.signal ? `signal ${e.signal}` : `status ${e.code}`})`);
    }
    try {
      const r = await httpGet(`${engine.url}/health`, { timeoutMs: Math.min(2000, Math.max(100, timeLeft())) });
      if (r.status === 200 && r.body && r.body.status === 'ok') {
        engine.health = r.body;
        engine.bootMs = Date.now() - t0;
        return engine;
      }
      lastProblem = `/health answered ${r.status}`;
    } catch (err) {
      lastProblem = err.message;
    }
    await proc.sleep(Math.min(100, Math.max(0, timeLeft())));
  }
  return failWith('timeout', `the engine did not pass its health check within ${bootTimeoutMs / 1000} s (${lastProblem})`);
}

class Engine {
  constructor(child, token, command) {
    this.child = child;
    this.pid = child.pid;
    this.token = token;
    this.command = command;
    this.exit = null;
    this.stopping = false;
    this.exited = new Promise((resolve) => {
      child.on('error', (err) => { if (!this.exit) { this.exit = { code: null, signal: null, error: err.message }; resolve(this.exit); } });
      child.on('exit', (code, signal) => { this.exit = { code, signal }; resolve(this.exit); });
    });
  }

  get running() { return this.exit == null; }

  /** GET a path with the token (for the UI's own checks, e.g. running jobs). */
  get(pathname, opts) { return httpGet(`${this.url}${pathname}`, { token: this.token, ...opts }); }

  /** SIGTERM to the group, SIGKILL after 1 s, resolve once no process of it is left. */
  async stop({ graceMs = 1000 } = {}) {
    this.stopping = true;
    if (!this.pid) return { how: 'gone', ms: 0 };
    const result = await proc.stopGroup(this.pid, { graceMs });
    if (this.running) await Promise.race([this.exited, proc.sleep(2000)]);
    return result;
  }
}

module.exports = { startEngine, Engine, EngineStartError, newToken, httpGet, DEFAULT_BOOT_TIMEOUT_MS };
