'use strict';
// What the Engine page asks the main process for, as plain functions (tested under
// node --test; main.js only wires them to ipcMain):
//   info(launcher)            what runs (engine's /system: version, variant, device, GPUs),
//                             installed versions with sizes (`status --json`), the
//                             variants that fit this machine with each verdict
//                             (`detect --json`), the update state, the settings
//   selfTestStart(engine, n)  POST /self-test {"steps": n} -> { id }
//   selfTestPoll(engine, id)  GET /self-test/<id> -> the engine's state object
// The engine's token never leaves the main process.

const http = require('node:http');

/** One request with the engine's token; resolves { status, body } (body parsed when JSON). */
function request(engine, method, pathname, body, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const req = http.request(`${engine.url}${pathname}`, {
      method, timeout: timeoutMs,
      headers: { Authorization: `Bearer ${engine.token}`, ...(data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body: json, text });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`the engine did not answer ${method} ${pathname} within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

const NOT_RUNNING = 'The engine is not running. Start it (Try again, or Repair) and check again.';

/** Start the engine's self-test; resolves { id } or { error } in words. */
async function selfTestStart(engine, steps = 8) {
  if (!engine || !engine.running) return { error: NOT_RUNNING };
  let r;
  try { r = await request(engine, 'POST', '/self-test', { steps }); } catch (err) { return { error: `The engine did not answer: ${err.message}` }; }
  if (r.status === 404) return { state: 'unavailable', message: 'This engine is too old to check itself: update it, then try again.' };
  if (r.status >= 400 || !r.body || !r.body.id) return { error: `The engine could not start its check (HTTP ${r.status}).` };
  return { id: String(r.body.id), ...(r.body.state ? { state: r.body.state, message: r.body.message } : {}) };
}

/** One poll of a running self-test: the engine's object, or { state: 'failed', message }. */
async function selfTestPoll(engine, id) {
  if (!engine || !engine.running) return { state: 'failed', message: NOT_RUNNING };
  let r;
  try { r = await request(engine, 'GET', `/self-test/${encodeURIComponent(id)}`); } catch (err) {
    return { state: 'failed', message: `The engine stopped answering: ${err.message}` };
  }
  if (r.status !== 200 || !r.body) return { state: 'failed', message: `The engine answered HTTP ${r.status} for its check.` };
  return r.body;
}

/** Run a self-test to its end, calling onUpdate with each state; resolves with the last. */
async function selfTest(engine, { steps = 8, intervalMs = 250, timeoutMs = 300000, onUpdate = () => {} } = {}) {
  const started = await selfTestStart(engine, steps);
  if (started.error) return { state: 'failed', message: started.error };
  if (!started.id) return started;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await selfTestPoll(engine, started.id);
    onUpdate(st);
    if (st.state !== 'running') return st;
    if (Date.now() > deadline) return { ...st, state: 'failed', message: `the check did not finish within ${timeoutMs / 1000} s` };
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Everything the Engine page shows. `launcher`: lib/launcher.js's Launcher. Each part
 * that cannot be had says why instead ({ error }) so the page never stays empty.
 */
async function info(launcher, { settings = {}, uiUrl = null } = {}) {
  const engine = launcher.engine;
  const out = { running: null, status: null, detect: null, update: launcher.lastUpdate || null, settings, uiUrl, mode: launcher.mode,
    log: launcher.logFile };
  const tasks = [];
  if (engine && engine.running) {
    // the release's version and variant (what ensure handed over), else what the engine says of itself
    const spec = (launcher.supervisor && launcher.supervisor.spec) || {};
    const version = spec.version || engine.version;
    const variant = spec.variant || engine.variant;
    tasks.push(request(engine, 'GET', '/system', undefined, { timeoutMs: 5000 }).then((r) => {
      out.running = { version, variant, url: engine.url, pid: engine.pid, ...(r.status === 200 && r.body ? { system: r.body } : {}) };
    }).catch((err) => { out.running = { version, variant, pid: engine.pid, error: err.message }; }));
  }
  if (launcher.mode !== 'dev') {
    tasks.push(launcher.query('status').then((r) => {
      const st = r.events.find((e) => e.event === 'status');
      out.status = st || { error: r.error ? r.error.message : 'no status' };
    }));
    tasks.push(launcher.query('detect').then((r) => {
      const hardware = r.events.find((e) => e.event === 'hardware') || null;
      const verdicts = r.events.filter((e) => e.event === 'verdict');
      out.detect = { hardware, verdicts, ...(r.code !== 0 && r.error ? { error: r.error.message, reason: r.error.reason } : {}) };
    }));
  }
  await Promise.all(tasks);
  return out;
}

module.exports = { request, selfTestStart, selfTestPoll, selfTest, info };
