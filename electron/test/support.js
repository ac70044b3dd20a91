'use strict';
// Shared test helpers: real tools, a real signed repository, a real HTTP server.
//
// Tools come from the environment, with the workspace's builds as defaults:
//   PEFT_BOOTSTRAP         target/debug/peft-bootstrap
//   PEFT_RELEASE           target/debug/peft-release
//   PEFT_TEST_BUNDLE_DIR   target/bundles/core-<os>-<arch>-cpu (backend/run-tests builds it;
//                          a folder holding peft_engine/peft_engine)
// A missing tool skips the test with the reason, or fails it when PEFT_E2E_REQUIRE=1.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { JsonLines } = require('../lib/jsonlines');
const paths = require('../lib/paths');

const REPO = paths.REPO_DIR;
// the variant id (ids say arm64: macos-arm64-cpu), and the bundle folder run-all names after `uname -m`
const VARIANT = paths.cpuVariant();
const UNAME_M = { x64: 'x86_64', arm64: process.platform === 'darwin' ? 'arm64' : 'aarch64' }[process.arch] || process.arch;
const OS = { linux: 'linux', darwin: 'macos', win32: 'windows' }[process.platform];
const TOOLS = {
  bootstrap: process.env.PEFT_BOOTSTRAP || path.join(REPO, 'target', 'debug', 'peft-bootstrap'),
  release: process.env.PEFT_RELEASE || path.join(REPO, 'target', 'debug', 'peft-release'),
  bundle: process.env.PEFT_TEST_BUNDLE_DIR || path.join(REPO, 'target', 'bundles', `core-${OS}-${UNAME_M}-cpu`),
};
const ENGINE_REL = path.join('peft_engine', `peft_engine${paths.EXE}`);

/** Skip (or fail under PEFT_E2E_REQUIRE=1) unless the named tools exist. Returns true when usable. */
function need(t, ...names) {
  const missing = [];
  for (const n of names) {
    if (n === 'bundle') { if (!paths.isExecutable(path.join(TOOLS.bundle, ENGINE_REL))) missing.push(`frozen bundle ${TOOLS.bundle} (set PEFT_TEST_BUNDLE_DIR or run backend/run-tests)`); }
    else if (n === 'chromium') { if (!paths.isExecutable(CHROMIUM)) missing.push(`${CHROMIUM} (apt install chromium)`); }
    else if (!paths.isExecutable(TOOLS[n])) missing.push(`${TOOLS[n]} (set PEFT_${n === 'bootstrap' ? 'BOOTSTRAP' : 'RELEASE'} or cargo build)`);
  }
  if (missing.length === 0) return true;
  const why = `missing ${missing.join('; ')}`;
  if (process.env.PEFT_E2E_REQUIRE === '1') throw new Error(`PEFT_E2E_REQUIRE=1 and ${why}`);
  t.skip(why);
  process.stderr.write(`skipped: ${why}\n`);
  return false;
}
const CHROMIUM = process.env.PEFT_CHROMIUM || '/usr/bin/chromium';

function tmp(prefix = 'peft-electron-') { return fs.mkdtempSync(path.join(os.tmpdir(), prefix)); }

/** A real signed repository made with peft-release. */
class Repo {
  constructor(root) {
    this.root = root;
    this.dir = path.join(root, 'repo');
    this.keys = path.join(root, 'keys');
    execFileSync(TOOLS.release, ['keygen', '--out', this.keys], { stdio: 'ignore' });
    this.pub = path.join(this.keys, 'release.pub');
  }

  pack(version, input = TOOLS.bundle, entry = 'peft_engine/peft_engine', variant = VARIANT) {
    // zstd level 3: the archives have the same format as at the default 19, which
    // takes about 20 s per pack of the core bundle on two cores.
    execFileSync(TOOLS.release, ['pack', '--repo', this.dir, '--input', input, '--version', version, '--variant', variant,
      '--entry', entry, '--zstd-level', '3'], { stdio: 'ignore' });
    return this;
  }

  publish() {
    execFileSync(TOOLS.release, ['publish', '--repo', this.dir, '--channel', 'stable', '--key', path.join(this.keys, 'release.key')], { stdio: 'ignore' });
    return this;
  }
}

/** A bundle folder whose entry exits at once (a release that fails its health check). */
function brokenBundle(root) {
  const dir = path.join(root, 'broken');
  fs.mkdirSync(path.join(dir, 'peft_engine'), { recursive: true });
  const exe = path.join(dir, 'peft_engine', 'peft_engine');
  fs.writeFileSync(exe, '#!/bin/sh\necho "this engine is broken on purpose" >&2\nexit 3\n');
  fs.chmodSync(exe, 0o755);
  return dir;
}

/**
 * A static file server on loopback that counts requests and honours `Range: bytes=N-`.
 * `srv.throttle = bytesPerSecond` slows every body down (0: full speed).
 */
async function serve(dir) {
  const hits = [];
  const ranges = [];
  const state = { throttle: 0 };
  const server = http.createServer((req, res) => {
    hits.push(req.url);
    const file = path.join(dir, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!file.startsWith(dir)) { res.writeHead(403).end(); return; }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) { res.writeHead(404).end(); return; }
      const m = /^bytes=(\d+)-$/.exec(req.headers.range || '');
      const start = m ? Number(m[1]) : 0;
      if (m) {
        ranges.push([req.url, start]);
        if (start >= st.size) { res.writeHead(416, { 'Content-Range': `bytes */${st.size}` }).end(); return; }
        res.writeHead(206, { 'Content-Length': st.size - start, 'Content-Range': `bytes ${start}-${st.size - 1}/${st.size}` });
      } else {
        res.writeHead(200, { 'Content-Length': st.size, 'Content-Type': 'application/octet-stream' });
      }
      const body = fs.createReadStream(file, { start, highWaterMark: 64 * 1024 });
      if (!state.throttle) { body.pipe(res); return; }
      body.on('data', (chunk) => {
        body.pause();
        res.write(chunk, () => setTimeout(() => body.resume(), (chunk.length / state.throttle) * 1000));
      });
      body.on('end', () => res.end());
      res.on('close', () => body.destroy());
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url, hits, ranges, manifest: `${url}/channels/stable/manifest.json`,
    set throttle(v) { state.throttle = v; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** `node headless.js` as a real child process; events parsed as they come. */
function headless(env) {
  const child = spawn(process.execPath, [path.join(paths.ELECTRON_DIR, 'headless.js')], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events = [];
  const garbage = [];
  let stderr = '';
  const waiters = [];
  const reader = new JsonLines({
    onEvent: (ev) => { events.push(ev); for (const w of [...waiters]) w(); },
    onGarbage: (text) => garbage.push(text),
  });
  child.stdout.on('data', (c) => reader.push(c));
  child.stderr.on('data', (c) => { stderr += c; });
  const exited = new Promise((r) => child.on('exit', (code, signal) => { r({ code, signal }); for (const w of [...waiters]) w(); }));
  const h = {
    child, events, garbage, exited,
    get stderr() { return stderr; },
    /** Resolve with the first event (from index `from`) matching pred, within timeoutMs. */
    waitFor(pred, timeoutMs = 30000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.slice(from).find(pred);
          if (found) { done(); resolve(found); return true; }
          if (child.exitCode != null || child.signalCode != null) {
            done(); reject(new Error(`headless exited (${child.exitCode ?? child.signalCode}) first; events:\n${events.map((e) => JSON.stringify(e).slice(0, 300)).join('\n')}\nstderr:\n${stderr.slice(-3000)}`));
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms; events:\n${events.map((e) => JSON.stringify(e).slice(0, 300)).join('\n')}\nstderr:\n${stderr.slice(-3000)}`)); }, timeoutMs);
        const done = () => { clearTimeout(timer); const i = waiters.indexOf(check); if (i >= 0) waiters.splice(i, 1); };
        if (!check()) waiters.push(check);
      });
    },
    async stop(sig = 'SIGTERM') {
      if (child.exitCode == null && child.signalCode == null) child.kill(sig);
      return exited;
    },
  };
  return h;
}

/** Env for a headless run against a served repository. */
function prodEnv({ manifest, pub, cache, app, extra = {} }) {
  return { PEFT_BOOTSTRAP: TOOLS.bootstrap, PEFT_MANIFEST_URL: manifest, PEFT_TRUSTED_KEY: pub, PEFT_CACHE_DIR: cache,
    PEFT_APP_DIR: app, PEFT_UPDATE: '0', PEFT_LOCK_TIMEOUT: '20', ...extra };
}

/** Pids of live processes whose executable or command line contains `needle` (Linux /proc). */
function processesMatching(needle) {
  const found = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) found.push(Number(name));
    } catch { /* gone */ }
  }
  return found;
}

async function eventually(pred, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

module.exports = { TOOLS, VARIANT, ENGINE_REL, CHROMIUM, need, tmp, Repo, brokenBundle, serve, headless, prodEnv, processesMatching, eventually };
