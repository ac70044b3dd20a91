'use strict';
// getBackendStatus / restartBackend / backend-status (lib/backend-status.js): the status
// folded from the launcher's events, and restarts through a real Launcher whose engine is a
// real process keeping the token rules (test/fixtures/token-engine.js, started through the
// launcher's development mode).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { BackendStatus, BackendControl, senderUrl } = require('../lib/backend-status');
const { Launcher } = require('../lib/launcher');
const { httpGet } = require('../lib/engine');
const { tmp } = require('./support');

const FIXTURE_ENGINE = path.join(__dirname, 'fixtures', 'token-engine.js');

test('the status follows the launcher: installing, starting, running with url and token, exited, restarting, failed', () => {
  const s = new BackendStatus();
  const seen = [];
  s.on('change', (x) => seen.push(x));
  assert.deepEqual(s.get(), { state: 'idle', url: null, token: null, version: null, variant: null, pid: null });

  assert.equal(s.feed({ event: 'hardware', os: 'linux' }), true);
  assert.equal(s.get().state, 'installing');
  assert.equal(s.feed({ event: 'verdict', fits: true }), false, 'nothing new to say');
  s.feed({ event: 'selected', version: '1.3.0', variant: 'linux-x86_64-cuda12.8', reason: 'fits' });
  s.feed({ event: 'progress', phase: 'download', done: 10, total: 100, resumed_from: 4 });
  assert.deepEqual(s.get().progress, { phase: 'download', done: 10, total: 100, resumed_from: 4 });
  assert.equal(s.get().variant, 'linux-x86_64-cuda12.8');
  s.feed({ event: 'retry', attempt: 2, max_attempts: 5 });
  assert.equal(s.get().state, 'installing', 'a retry keeps installing');
  s.feed({ event: 'ready', version: '1.3.0', variant: 'linux-x86_64-cuda12.8', executable: '/x' });
  assert.equal(s.get().state, 'starting');
  assert.equal(s.get().progress, undefined, 'progress is gone once installed');
  s.feed({ event: 'engine', state: 'starting', pid: 7, version: '1.3.0', variant: 'linux-x86_64-cuda12.8' });
  s.feed({ event: 'engine', state: 'running', pid: 7, url: 'http://127.0.0.1:5000', token: 't', version: '1.3.0', variant: 'linux-x86_64-cuda12.8' });
  assert.deepEqual(s.get(), { state: 'running', url: 'http://127.0.0.1:5000', token: 't', version: '1.3.0', variant: 'linux-x86_64-cuda12.8', pid: 7 });
  assert.equal(s.feed({ event: 'progress', phase: 'download', done: 1, total: 2 }), false, 'background noise does not disturb a running engine');
  s.feed({ event: 'update', state: 'staged', version: '1.4.0', variant: 'linux-x86_64-cuda12.8' });
  assert.equal(s.get().state, 'running');
  assert.deepEqual(s.get().update, { state: 'staged', version: '1.4.0', variant: 'linux-x86_64-cuda12.8' });
  s.feed({ event: 'engine', state: 'exited', pid: 7, code: null, signal: 'SIGKILL' });
  assert.equal(s.get().url, null, 'no URL while nothing serves');
  assert.equal(s.get().token, null);
  assert.equal(s.get().signal, 'SIGKILL');
  assert.deepEqual(s.get().update, { state: 'staged', version: '1.4.0', variant: 'linux-x86_64-cuda12.8' }, 'the update notice survives');
  s.feed({ event: 'engine', state: 'restarting', in_ms: 1000, attempt: 1 });
  assert.equal(s.get().in_ms, 1000);
  s.feed({ event: 'engine', state: 'failed', message: 'crashed 6 times', log: '/l/engine.log' });
  assert.deepEqual([s.get().state, s.get().message, s.get().log], ['failed', 'crashed 6 times', '/l/engine.log']);
  s.feed({ event: 'rollback', from: 'a', to: 'b', reason: 'r' });
  assert.deepEqual(s.get().rollback, { from: 'a', to: 'b', reason: 'r' });
  assert.ok(seen.length >= 10);
  assert.notEqual(seen[0], seen[1]);
  seen[0].state = 'changed by a listener';
  assert.notEqual(s.get().state, 'changed by a listener', 'listeners get copies');
});

test('a bootstrapper error becomes state error with its reason, hint and exit code; junk is ignored', () => {
  const s = new BackendStatus();
  s.feed({ event: 'error', code: 'network', reason: 'unreachable', message: 'connection refused', hint: 'check the connection', exit_code: 3 });
  assert.deepEqual(s.get(), { state: 'error', url: null, token: null, version: null, variant: null, pid: null,
    message: 'connection refused', hint: 'check the connection', code: 'network', reason: 'unreachable', exit_code: 3 });
  assert.equal(s.feed(null), false);
  assert.equal(s.feed('text'), false);
  assert.equal(s.feed({ event: 'engine', state: 'dancing' }), false);
  assert.equal(s.feed({ event: 'something_new' }), false);
  s.feed({ event: 'hardware' });
  assert.equal(s.get().state, 'installing', 'Try again after an error starts over');
  assert.equal(s.get().message, undefined);
});

test('senderUrl takes the frame\'s URL, else the webContents\'', () => {
  assert.equal(senderUrl({ senderFrame: { url: 'file:///a' }, sender: { getURL: () => 'file:///b' } }), 'file:///a');
  assert.equal(senderUrl({ senderFrame: null, sender: { getURL: () => 'file:///b' } }), 'file:///b');
  assert.equal(senderUrl({}), '');
  assert.equal(senderUrl(undefined), '');
});

test('BackendControl refuses pages that are not the app\'s and restarts only once at a time', async () => {
  let restarts = 0;
  let release;
  const launcher = { quitting: false, restartToUpdate: () => { restarts += 1; return restarts === 1 ? new Promise((r) => { release = r; }) : Promise.resolve(null); } };
  const status = new BackendStatus();
  const c = new BackendControl({ launcher, status, allow: (u) => u.startsWith('file://') });
  assert.throws(() => c.getStatus('https://evil.example/'), /https:\/\/evil\.example\/ is not one of this app's pages/);
  assert.throws(() => c.restart('https://evil.example/'), /not one of this app's pages/);
  assert.equal(c.getStatus('file:///app/index.html').state, 'idle');
  const a = c.restart('file:///app/index.html');
  const b = c.restart('file:///app/index.html');
  assert.equal(a, b, 'a second restart while one runs joins it');
  assert.equal(restarts, 1);
  status.feed({ event: 'engine', state: 'running', url: 'http://127.0.0.1:1', token: 'x', pid: 1 });
  release();
  assert.equal((await a).state, 'running', 'resolves with the status after the start');
  await c.restart('file:///app/index.html');
  assert.equal(restarts, 2, 'a later restart runs again');
  launcher.quitting = true;
  await assert.rejects(c.restart('file:///app/index.html'), /quitting/);
  const h = c.handlers();
  assert.deepEqual(Object.keys(h).sort(), ['backend:get-status', 'backend:restart']);
  assert.throws(() => h['backend:get-status']({ senderFrame: { url: 'http://evil.example/' } }), /not one of this app's pages/);
  assert.equal(h['backend:get-status']({ senderFrame: { url: 'file:///x' } }).state, 'running');
});

test('restartBackend through a real launcher: a new engine process with a new URL and token, and the old one gone', { timeout: 60000 }, async (t) => {
  const appDir = tmp();
  const launcher = new Launcher({ mode: 'dev', env: { ...process.env, PEFT_DEV_PYTHON: FIXTURE_ENGINE }, appDir, bootTimeoutMs: 7000 });
  const status = new BackendStatus();
  const changes = [];
  launcher.on('event', (ev) => status.feed(ev));
  status.on('change', (s) => changes.push(s.state));
  t.after(() => launcher.stop());
  const control = new BackendControl({ launcher, status, allow: (u) => u.startsWith('file://') });

  assert.ok(await launcher.start(), 'the engine started');
  const first = control.getStatus('file:///app');
  assert.equal(first.state, 'running');
  assert.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(first.token, /^[A-Za-z0-9_-]{43}$/, "256 random bits, base64url");
  assert.equal((await httpGet(`${first.url}/api`, { token: first.token })).status, 200, 'the token opens the engine');
  assert.equal((await httpGet(`${first.url}/api`)).status, 401, 'nothing without it');

  const after = await control.restart('file:///app');
  assert.equal(after.state, 'running');
  assert.notEqual(after.pid, first.pid, 'a new process');
  assert.notEqual(after.token, first.token, 'a new token');
  assert.equal((await httpGet(`${after.url}/api`, { token: after.token })).status, 200);
  assert.deepEqual(changes.slice(-3), ['exited', 'starting', 'running'], `backend-status told each step: ${changes.join(' ')}`);
  assert.throws(() => process.kill(first.pid, 0), 'the first engine is gone');
});
