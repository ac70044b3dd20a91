'use strict';
// node headless.js (the launcher, docs/CONTRACT.md §9) against the real peft-bootstrap, a real
// signed repository served over HTTP on loopback, and the real frozen engine.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { need, tmp, Repo, brokenBundle, serve, headless, prodEnv, processesMatching, eventually } = require('./support');
const { httpGet } = require('../lib/engine');
const proc = require('../lib/proc');

test('first start installs from the network, starts a guarded engine; second start is from the cache with no network', { timeout: 180000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const env = prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') });

  const h = headless(env);
  const running = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 120000);
  const kinds = h.events.map((e) => e.event);
  // bootstrapper events forwarded unchanged, in order, then the launcher's own
  assert.equal(kinds[0], 'hardware');
  for (const k of ['selected', 'progress', 'ready', 'engine']) assert.ok(kinds.includes(k), `${k} in ${kinds}`);
  assert.ok(kinds.indexOf('selected') < kinds.indexOf('ready') && kinds.indexOf('ready') < kinds.indexOf('engine'));
  const ready = h.events.find((e) => e.event === 'ready');
  assert.equal(ready.source, 'network');
  const phases = new Set(h.events.filter((e) => e.event === 'progress').map((e) => e.phase));
  assert.ok(phases.has('download') && phases.has('extract'), [...phases].join());
  assert.equal(running.version, '1.0.0');
  assert.match(running.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(running.token.length >= 32 && Number.isInteger(running.pid));
  assert.equal(proc.exePath(running.pid), ready.executable);
  assert.deepEqual(h.garbage, [], 'stdout carries JSON lines only');

  // docs/CONTRACT.md §8 through the launcher: /health open, the rest needs the token, foreign Host refused
  assert.equal((await httpGet(`${running.url}/health`)).status, 200);
  assert.equal((await httpGet(`${running.url}/system`)).status, 401);
  assert.equal((await httpGet(`${running.url}/system`, { token: 'not-the-token' })).status, 401);
  assert.equal((await httpGet(`${running.url}/system`, { token: running.token })).status, 200);
  assert.equal((await httpGet(`${running.url}/health`, { headers: { Host: 'rebind.example.com' } })).status, 403);
  assert.equal((await httpGet(`${running.url}/system`, { token: running.token, headers: { Host: `localhost:${new URL(running.url).port}` } })).status, 200);

  const t0 = Date.now();
  const exit = await h.stop('SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(proc.alive(running.pid), false, 'no engine left after quit');
  assert.deepEqual(processesMatching(ready.executable), []);
  t.diagnostic(`quit took ${Date.now() - t0} ms`);

  // second start: the cache answers, the server sees no request at all
  srv.hits.length = 0;
  const h2 = headless(env);
  const running2 = await h2.waitFor((e) => e.event === 'engine' && e.state === 'running', 60000);
  const ready2 = h2.events.find((e) => e.event === 'ready');
  assert.equal(ready2.source, 'cache');
  assert.equal(h2.events.some((e) => e.event === 'progress'), false);
  assert.deepEqual(srv.hits, []);
  assert.notEqual(running2.token, running.token, 'a fresh token per launch');
  await h2.stop();
  assert.equal(proc.alive(running2.pid), false);
});

test('bootstrapper failures reach the caller as error events with the exit code', { timeout: 300000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const other = new Repo(path.join(root, 'other'));
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  // a repository with only a CUDA engine, which this machine (no NVIDIA driver) cannot run
  const cudaOnly = new Repo(path.join(root, 'cuda')).pack('1.0.0', brokenBundle(path.join(root, 'cuda')), undefined, 'linux-x86_64-cuda12.8').publish();
  const cudaSrv = await serve(cudaOnly.dir);
  t.after(() => cudaSrv.close());
  const base = { manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') };

  const cases = [
    ['untrusted key', { ...base, pub: other.pub }, 4, 'integrity', 'untrusted_key'],
    ['unreachable repository', { ...base, manifest: 'http://127.0.0.1:9/channels/stable/manifest.json' }, 3, 'network', 'unreachable'],
    ['no variant fits', { ...base, manifest: cudaSrv.manifest, pub: cudaOnly.pub }, 5, 'no_variant', 'no_variant'],
    // the repository offers only the CPU build: a forced CUDA id is a usage error naming the offered ids
    ['a variant no release offers', { ...base, extra: { PEFT_BACKEND_VARIANT: 'linux-x86_64-cuda12.8' } }, 2, 'usage', 'unknown_variant'],
    ['bad setting', { ...base, extra: { PEFT_CHANNEL: 'Not A Channel!' } }, 2, 'usage', 'usage'],
  ];
  for (const [name, opts, exitCode, code, reason] of cases) {
    const h = headless(prodEnv(opts));
    const exit = await h.exited;
    const err = h.events.find((e) => e.event === 'error');
    assert.ok(err, `${name}: an error event; stderr ${h.stderr}`);
    assert.equal(err.exit_code, exitCode, `${name}: ${JSON.stringify(err)}`);
    assert.equal(err.code, code, name);
    assert.equal(err.reason, reason, `${name}: the window words it by reason`);
    if (reason === 'unknown_variant') assert.match(err.message, /linux-x86_64-cpu/, `${name}: lists the offered ids`);
    assert.ok(err.message.length > 10, name);
    assert.equal(exit.code, exitCode, `${name}: headless exits with the bootstrapper's code`);
    assert.equal(h.events.some((e) => e.event === 'engine' && e.state === 'running'), false);
  }
  assert.deepEqual(processesMatching(path.join(root, 'cache')), []);
});

test('a missing bootstrapper is an error that names it', async () => {
  const root = tmp();
  const h = headless({ PEFT_BOOTSTRAP: path.join(root, 'nope', 'peft-bootstrap'), PEFT_APP_DIR: path.join(root, 'app'), PEFT_UPDATE: '0' });
  const exit = await h.exited;
  const err = h.events.find((e) => e.event === 'error');
  assert.match(err.message, /cannot run the bootstrapper .*nope/);
  assert.equal(exit.code, 1);
});

test('dev mode runs backend/main.py with no bootstrapper', { timeout: 60000 }, async () => {
  const root = tmp();
  const h = headless({ PEFT_DEV: '1', PEFT_BOOTSTRAP: path.join(root, 'absent'), PEFT_APP_DIR: path.join(root, 'app'), PEFT_DATA_DIR: path.join(root, 'data') });
  const running = await h.waitFor((e) => e.event === 'engine' && e.state === 'running', 45000);
  assert.equal(running.version, '0.0.0-dev');
  assert.equal(running.variant, 'dev');
  assert.deepEqual(h.events.map((e) => e.event), ['engine', 'engine'], 'no bootstrapper events');
  const health = await httpGet(`${running.url}/health`);
  assert.equal(health.body.profile ?? 'source', 'source');
  assert.equal((await httpGet(`${running.url}/system`, { token: running.token })).body.frozen, false);
  assert.equal((await httpGet(`${running.url}/system`)).status, 401, 'dev mode through the launcher is guarded too');
  assert.deepEqual(await h.stop('SIGINT'), { code: 0, signal: null }, 'SIGINT: exit 0');
  assert.equal(proc.alive(running.pid), false, 'the dev engine is gone when headless exits');
});

test('cancel stops the bootstrapper and keeps the partial download; the next try resumes it with Range', { timeout: 180000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const { Launcher } = require('../lib/launcher');
  const fs = require('node:fs');
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const cache = path.join(root, 'cache');
  const env = { ...process.env, ...prodEnv({ manifest: srv.manifest, pub: repo.pub, cache, app: path.join(root, 'app') }) };
  const launcher = new Launcher({ bootstrap: env.PEFT_BOOTSTRAP, uiVersion: '0.1.0', env, appDir: path.join(root, 'app') });
  const events = [];
  launcher.on('event', (e) => events.push(e));
  t.after(() => launcher.stop());

  srv.throttle = 2 * 1024 * 1024; // 2 MB/s: the 24 MB archive takes ~12 s
  const first = launcher.start();
  await eventually(() => events.some((e) => e.event === 'progress' && e.phase === 'download' && e.done >= 3_000_000), 60000, 'a few MB downloaded');
  const bootstrapPid = launcher._fgRun.pid;
  launcher.cancel();
  assert.equal(await first, null, 'no engine after cancel');
  assert.equal(proc.alive(bootstrapPid), false, 'the bootstrapper is gone');
  assert.equal(events.some((e) => e.event === 'error'), false, 'a cancel is not reported as an error');
  const partial = fs.readdirSync(path.join(cache, 'downloads')).filter((f) => f.endsWith('.partial'));
  assert.equal(partial.length, 1, 'the partial download is kept');
  const kept = fs.statSync(path.join(cache, 'downloads', partial[0])).size;
  assert.ok(kept >= 1_000_000, `kept ${kept} bytes`); // written in 1 MiB steps, so a little behind the progress events

  // "Try again" at full speed: resumed from where it stopped, then the engine runs
  srv.throttle = 0;
  const before = events.length;
  const engine = await launcher.start();
  assert.ok(engine && engine.running);
  const resumed = srv.ranges.filter(([url]) => url.startsWith('/blobs/'));
  assert.equal(resumed.length, 1, JSON.stringify(srv.ranges));
  assert.ok(resumed[0][1] > 0 && resumed[0][1] <= kept, `resumed at ${resumed[0][1]} of ${kept} kept`);
  // the window says "Resuming at …" from the progress events' resumed_from (where the bootstrapper sends it)
  const again = events.slice(before).filter((e) => e.event === 'progress' && e.phase === 'download');
  t.diagnostic(`first progress after the retry: ${JSON.stringify(again[0])}`);
  if (again.some((e) => 'resumed_from' in e)) {
    assert.ok(again.every((e) => e.resumed_from === resumed[0][1]), JSON.stringify(again.slice(0, 2)));
    const D = require('../ui/describe.js');
    assert.match(D.transferWords({ phase: 'download', done: again[0].done, total: again[0].total, resumedFrom: again[0].resumed_from }), /^Resuming at \d/);
  }
  await launcher.stop();
  assert.equal(proc.alive(engine.pid), false);
});

test('"Try again" while an ensure still runs cancels it first instead of waiting for its lock', { timeout: 180000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const { Launcher } = require('../lib/launcher');
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const env = { ...process.env, ...prodEnv({ manifest: srv.manifest, pub: repo.pub, cache: path.join(root, 'cache'), app: path.join(root, 'app') }) };
  const launcher = new Launcher({ bootstrap: env.PEFT_BOOTSTRAP, uiVersion: '0.1.0', env, appDir: path.join(root, 'app') });
  const events = [];
  launcher.on('event', (e) => events.push(e));
  t.after(() => launcher.stop());
  srv.throttle = 256 * 1024; // a "stalled" download: ~100 s for the archive
  const first = launcher.start();
  await eventually(() => events.some((e) => e.event === 'progress' && e.phase === 'download'), 60000, 'the download to begin');
  srv.throttle = 0;
  const t0 = Date.now();
  const engine = await launcher.start();
  assert.equal(await first, null);
  assert.ok(engine && engine.running);
  assert.ok(Date.now() - t0 < 30000, `retry took ${Date.now() - t0} ms`);
  assert.equal(events.some((e) => e.event === 'error' && e.exit_code === 7), false, 'no lock wait');
});
