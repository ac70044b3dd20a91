'use strict';
// The supervisor and engine record against the real frozen engine (and, for SIGTERM
// being ignored, a real small process that ignores it).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { need, tmp, TOOLS, ENGINE_REL, Repo, serve, headless, prodEnv, eventually, processesMatching } = require('./support');
const { Supervisor } = require('../lib/supervisor');
const record = require('../lib/record');
const proc = require('../lib/proc');
const { httpGet } = require('../lib/engine');

const frozen = () => ({ command: path.join(TOOLS.bundle, ENGINE_REL), args: [], env: { ...process.env, PEFT_DATA_DIR: tmp() }, version: 'test', variant: 'cpu' });

function supervised(t, opts = {}) {
  const appDir = tmp();
  const s = new Supervisor({ appDir, bootTimeoutMs: 30000, ...opts });
  const events = [];
  s.on('engine', (e) => events.push(e));
  t.after(() => s.stop());
  return { s, events, appDir };
}

async function nextEvent(events, pred, timeoutMs, from = 0) {
  let found;
  await eventually(() => (found = events.slice(from).find(pred)), timeoutMs, 'an engine event');
  return found;
}

test('crash -> restart with a new pid after the backoff; quit -> nothing left', { timeout: 60000 }, async (t) => {
  if (!need(t, 'bundle')) return;
  const { s, events, appDir } = supervised(t, { backoffBaseMs: 300 });
  const first = await s.start(frozen());
  assert.equal(record.readRecord(appDir).pid, first.pid, 'the running engine is recorded');
  const t0 = Date.now();
  process.kill(first.pid, 'SIGKILL');
  const exited = await nextEvent(events, (e) => e.state === 'exited', 5000);
  assert.equal(exited.signal, 'SIGKILL');
  const restarting = await nextEvent(events, (e) => e.state === 'restarting', 5000);
  assert.equal(restarting.in_ms, 300);
  const n = events.length;
  const again = await nextEvent(events, (e) => e.state === 'running', 20000, n);
  assert.ok(Date.now() - t0 >= 300, 'waited for the backoff');
  assert.notEqual(again.pid, first.pid);
  assert.equal((await httpGet(`${again.url}/health`)).status, 200);
  assert.equal(record.readRecord(appDir).pid, again.pid);

  const stop = await s.stop();
  assert.equal(stop.how, 'sigterm', 'the real engine honours SIGTERM');
  assert.ok(stop.ms < 1000, `stopped in ${stop.ms} ms`);
  assert.equal(proc.alive(again.pid), false);
  assert.equal(proc.groupAlive(again.pid), false, 'no process of its group is left');
  assert.deepEqual(processesMatching(TOOLS.bundle), []);
  assert.equal(record.readRecord(appDir), null, 'record removed on quit');
  t.diagnostic(`restart after crash: ${Date.now() - t0} ms; quit: ${stop.ms} ms`);
});

test('an engine that ignores SIGTERM is killed with SIGKILL after ~1 s, its whole group with it', { timeout: 30000 }, async (t) => {
  const { s } = supervised(t);
  const e = await s.start({ command: process.execPath, args: [path.join(__dirname, 'fixtures', 'stubborn-engine.js')], env: process.env });
  const grandchild = e.health.child;
  assert.ok(proc.alive(grandchild));
  const stop = await s.stop();
  assert.equal(stop.how, 'sigkill');
  assert.ok(stop.ms >= 1000 && stop.ms < 1600, `killed after ${stop.ms} ms`);
  assert.equal(proc.alive(e.pid), false);
  assert.equal(proc.alive(grandchild), false, 'the engine\'s own child went with the group');
  t.diagnostic(`SIGTERM ignored: gone after ${stop.ms} ms`);
});

test('backoff limit: the 6th crash within 10 minutes ends in the failed state', { timeout: 90000 }, async (t) => {
  if (!need(t, 'bundle')) return;
  const { s, events } = supervised(t, { backoffBaseMs: 20 });
  await s.start(frozen());
  const delays = [];
  for (let crash = 1; crash <= 6; crash++) {
    const pid = s.engine.pid;
    const from = events.length;
    process.kill(pid, 'SIGKILL');
    const next = await nextEvent(events, (e) => e.state === 'restarting' || e.state === 'failed', 5000, from);
    if (crash <= 5) {
      assert.equal(next.state, 'restarting', `crash ${crash}`);
      delays.push(next.in_ms);
      await nextEvent(events, (e) => e.state === 'running', 20000, from);
    } else {
      assert.equal(next.state, 'failed');
      assert.match(next.message, /stopped 6 times in 10 minutes/);
      assert.ok(next.log.endsWith('engine.log') && fs.existsSync(next.log));
    }
  }
  assert.deepEqual(delays, [20, 40, 80, 160, 320], 'doubling backoff');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(events.filter((e) => e.state === 'running').length, 6, 'no start after failed');
  assert.deepEqual(processesMatching(TOOLS.bundle), []);
});

test('engine output goes to a rotating log file', { timeout: 30000 }, async (t) => {
  if (!need(t, 'bundle')) return;
  const { s, appDir } = supervised(t);
  s.log.maxBytes = 300;
  await s.start(frozen());
  await s.stop();
  const files = fs.readdirSync(path.join(appDir, 'logs')).sort();
  assert.ok(files.includes('engine.log') && files.includes('engine.1.log'), files.join());
  const all = files.map((f) => fs.readFileSync(path.join(appDir, 'logs', f), 'utf8')).join('');
  assert.match(all, /Uvicorn running|Application startup complete/);
  assert.match(all, /stopped engine \d+ \(sigterm/);
});

test('launcher killed with -9: the engine exits by itself within 2 s', { timeout: 120000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const h = headless(prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') }));
  const running = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 90000);
  const t0 = Date.now();
  h.child.kill('SIGKILL');
  await h.exited;
  await eventually(() => !proc.alive(running.pid), 2000, `engine ${running.pid} to exit after its launcher's kill -9`);
  t.diagnostic(`engine gone ${Date.now() - t0} ms after kill -9 of the launcher`);
});

test('a leftover engine of a recorded earlier launch is stopped; a stranger with a reused pid is not', { timeout: 60000 }, async (t) => {
  if (!need(t, 'bundle')) return;
  // an earlier launch's engine, still running (its launcher lost track of it)
  const appDir = tmp();
  const exe = path.join(TOOLS.bundle, ENGINE_REL);
  const leftover = spawn(exe, ['--host', '127.0.0.1', '--port', '0'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, PEFT_DATA_DIR: tmp() } });
  await new Promise((r) => leftover.stdout.once('data', r));
  record.writeRecord(appDir, { pid: leftover.pid, executable: exe, port: 0 });
  const r = await record.stopLeftover(appDir);
  assert.equal(r.stopped, true, r.why);
  assert.equal(proc.alive(leftover.pid), false);
  assert.equal(record.readRecord(appDir), null);

  // a stranger: a live process whose pid the record names, but started at another time
  const stranger = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  t.after(() => { try { process.kill(stranger.pid, 'SIGKILL'); } catch { /* gone */ } });
  fs.writeFileSync(record.recordPath(appDir), JSON.stringify({ pid: stranger.pid, pgid: stranger.pid, startTime: 'ticks:1', exe, executable: exe }));
  const r2 = await record.stopLeftover(appDir);
  assert.equal(r2.stopped, false);
  assert.match(r2.why, /another process reuses it/);
  await new Promise((res) => setTimeout(res, 1200));
  assert.equal(proc.alive(stranger.pid), true, 'the stranger is left alone');

  // same start time but another executable: left alone as well
  fs.writeFileSync(record.recordPath(appDir), JSON.stringify({ pid: stranger.pid, startTime: proc.startTime(stranger.pid), exe, executable: exe }));
  const r3 = await record.stopLeftover(appDir);
  assert.equal(r3.stopped, false);
  assert.match(r3.why, /runs .*sleep/);
  assert.equal(proc.alive(stranger.pid), true);
});

test('rollback: an update whose engine fails its first health check goes back to the previous install', { timeout: 240000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const env = prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app'), extra: { PEFT_UPDATE: '1', PEFT_ENGINE_BOOT_TIMEOUT: '20' } });
  const byState = (s) => (e) => e.event === 'update' && e.state === s;

  // 1. 1.0.0 installed and running; the background update finds nothing newer
  let h = headless(env);
  await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 90000);
  await h.waitFor(byState('checking'), 10000);
  const upToDate = await h.waitFor((e) => e.event === 'update' && e.state !== 'checking', 60000);
  assert.equal(upToDate.state, 'up_to_date', JSON.stringify(upToDate));
  assert.equal(upToDate.version, '1.0.0');
  await h.stop();

  // 2. a broken 1.1.0 is published: the running app stages it in the background
  repo.pack('1.1.0', require('./support').brokenBundle(root)).publish();
  h = headless(env);
  const r2 = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 60000);
  assert.equal(r2.version, '1.0.0', 'ensure keeps the current install; update stages');
  const staged = await h.waitFor((e) => e.event === 'update' && e.state !== 'checking', 60000);
  assert.deepEqual([staged.state, staged.version], ['staged', '1.1.0'], JSON.stringify(staged));
  await h.stop();

  // 3. next start switches to 1.1.0, whose engine exits: rollback to 1.0.0, which runs
  h = headless(env);
  const rb = await h.waitFor((e) => e.event === 'rollback', 60000);
  assert.match(rb.from, /^1\.1\.0-/);
  assert.match(rb.to, /^1\.0\.0-/);
  assert.match(rb.reason, /failed its first health check: the engine exited/);
  const r3 = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 60000);
  assert.equal(r3.version, '1.0.0');
  assert.equal((await httpGet(`${r3.url}/health`)).status, 200);
  const readies = h.events.filter((e) => e.event === 'ready').map((e) => e.version);
  assert.deepEqual(readies, ['1.1.0', '1.0.0'], 'ensure handed 1.1.0, rollback handed 1.0.0');
  // the rolled-back release is not offered again
  const after = await h.waitFor((e) => e.event === 'update' && e.state !== 'checking', 60000);
  assert.equal(after.state, 'up_to_date');
  assert.equal(after.version, '1.0.0');
  await h.stop();

  // 4. and the next start goes straight to 1.0.0
  h = headless({ ...env, PEFT_UPDATE: '0' });
  const r4 = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 60000);
  assert.equal(r4.version, '1.0.0');
  assert.equal(h.events.some((e) => e.event === 'rollback'), false);
  await h.stop();
});

test('restart to use a staged update switches through ensure (SIGHUP in headless)', { timeout: 240000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const env = prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') });
  let h = headless(env);
  await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 90000);
  await h.stop();
  repo.pack('1.1.0').publish();
  h = headless({ ...env, PEFT_UPDATE: '1' });
  const first = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 60000);
  assert.equal(first.version, '1.0.0');
  await h.waitFor((e) => e.event === 'update' && e.state === 'staged', 90000);
  const from = h.events.length;
  h.child.kill('SIGHUP');
  const second = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 60000, from);
  assert.equal(second.version, '1.1.0');
  assert.notEqual(second.pid, first.pid);
  assert.equal(proc.alive(first.pid), false, 'the old engine is gone before the new one serves');
  await h.stop();
});

test('busy(): a running job is seen through the token-guarded /jobs (quit asks first); none, or a frozen core engine, is not busy', { timeout: 60000 }, async (t) => {
  const stub = path.join(__dirname, 'fixtures', 'stubborn-engine.js');
  for (const [jobs, expected] of [['running', true], ['none', false]]) {
    const { s } = supervised(t);
    await s.start({ command: process.execPath, args: [stub], env: { ...process.env, STUB_JOBS: jobs } });
    assert.equal(await s.busy(), expected, jobs);
    await s.stop();
    assert.equal(await s.busy(), false, 'no engine, not busy');
  }
  if (!need(t, 'bundle')) return;
  const { s } = supervised(t);
  await s.start(frozen());
  assert.equal(await s.busy(), false, 'the core engine answers /jobs with 503 (no ML stack): nothing runs');
});

test('headless.js stops the leftover engine its record proves ours before starting a new one', { timeout: 60000 }, async (t) => {
  if (!need(t, 'bundle')) return;
  const app = tmp();
  const exe = path.join(TOOLS.bundle, ENGINE_REL);
  // an engine of an earlier launch that outlived it (started bare: it watches no parent)
  const old = spawn(exe, ['--host', '127.0.0.1', '--port', '0'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, PEFT_DATA_DIR: tmp() } });
  t.after(() => { try { process.kill(old.pid, 'SIGKILL'); } catch { /* gone */ } });
  await new Promise((r) => old.stdout.once('data', r));
  record.writeRecord(app, { pid: old.pid, executable: exe, port: 0 });
  const h = headless({ PEFT_DEV: '1', PEFT_APP_DIR: app, PEFT_DATA_DIR: tmp() });
  const running = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 45000);
  assert.equal(proc.alive(old.pid), false, 'the leftover was stopped');
  assert.match(h.stderr, new RegExp(`leftover engine: pid ${old.pid} started at .* as recorded; stopped \\(sigterm`));
  assert.equal(record.readRecord(app).pid, running.pid, 'the record now names the new engine');
  await h.stop();
  assert.equal(record.readRecord(app), null);
});
