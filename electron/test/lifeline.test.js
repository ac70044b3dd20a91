'use strict';
// The engine ends with the app with no Job Object at all (what a managed Windows PC
// in PowerShell's Constrained Language Mode gets): a launcher process starts the real
// frozen engine through lib/engine.js exactly as the app does, then is killed hard
// (SIGKILL; TerminateProcess on Windows). The engine's own parent watch (its stdin
// pipe) must end it. Portable: ci.yml runs this file on Windows and macOS too.
// And winjob.js gives the job up once, without retrying, when PowerShell says it
// runs constrained (a stand-in answers as the real helper does under CLM).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { JobObject } = require('../lib/winjob');
const paths = require('../lib/paths');
const { TOOLS, ENGINE_REL, need, tmp } = require('./support');

function alive(pid) {
  if (process.platform === 'linux') { // a zombie waiting for init to reap it is gone
    try { const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); return st.slice(st.lastIndexOf(')') + 2)[0] !== 'Z'; } catch { return false; }
  }
  try { process.kill(pid, 0); return true; } catch (err) { return err.code === 'EPERM'; }
}

test('with no Job Object, the engine exits within 3 s of its launcher being killed hard', { timeout: 120000 }, async (t) => {
  if (!need(t, 'bundle')) return;
  const exe = path.join(TOOLS.bundle, ENGINE_REL);
  const script = `
    const { startEngine } = require(${JSON.stringify(path.join(paths.ELECTRON_DIR, 'lib', 'engine.js'))});
    startEngine({ command: ${JSON.stringify(exe)}, jobObject: null, bootTimeoutMs: 60000 })
      .then((e) => { process.stdout.write(JSON.stringify({ pid: e.pid, url: e.url }) + '\\n'); setInterval(() => {}, 1000); },
            (err) => { process.stdout.write(JSON.stringify({ error: err.message }) + '\\n'); process.exit(1); });`;
  const launcher = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    let buf = '';
    launcher.stdout.on('data', (c) => { buf += c; if (buf.includes('\n')) resolve(JSON.parse(buf.split('\n')[0])); });
    launcher.on('exit', (code) => reject(new Error(`the launcher exited (${code}) before the engine ran: ${buf}`)));
  });
  assert.ok(line.pid, line.error);
  assert.ok(alive(line.pid), 'the engine runs');
  const t0 = Date.now();
  launcher.kill('SIGKILL');
  while (alive(line.pid) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 25));
  const ms = Date.now() - t0;
  t.diagnostic(`engine gone ${ms} ms after its launcher was killed`);
  if (alive(line.pid)) { try { process.kill(line.pid, 'SIGKILL'); } catch { /* gone */ } }
  assert.ok(ms < 3000, `the engine outlived its launcher by ${ms} ms`);
});

test('winjob: PowerShell in Constrained Language Mode -> the job is given up once, said in the log, never retried', { skip: process.platform === 'win32' && 'uses a POSIX stand-in for powershell.exe' }, async () => {
  const dir = tmp();
  const counter = path.join(dir, 'starts');
  const shell = path.join(dir, 'powershell');
  // answers like HELPER's first lines do when $ExecutionContext.SessionState.LanguageMode is ConstrainedLanguage
  fs.writeFileSync(shell, `#!/bin/sh\necho x >> '${counter}'\necho 'unavailable ConstrainedLanguage'\nexit 3\n`);
  fs.chmodSync(shell, 0o755);
  const log = [];
  const job = new JobObject((l) => log.push(l), { shell, platform: 'win32' }).start();
  await new Promise((r) => job.helper.on('exit', r));
  assert.match(job.unavailable, /ConstrainedLanguage mode, which forbids compiling the Job Object calls/);
  assert.ok(log.some((l) => /job object unavailable: .*the engine still ends with the app through its own parent watch/.test(l)), log.join('\n'));
  assert.equal(job.assign(12345), false);
  assert.equal(job.assign(12346), false);
  assert.equal(fs.readFileSync(counter, 'utf8').trim().split('\n').length, 1, 'PowerShell was started once, not per engine');
  // a PowerShell that is missing altogether
  const none = new JobObject(() => {}, { shell: path.join(dir, 'no-such-powershell'), platform: 'win32' }).start();
  await new Promise((r) => setTimeout(r, 200));
  assert.match(none.unavailable || '', /PowerShell could not start|ended before the job existed/);
  assert.equal(none.assign(1), false);
});
