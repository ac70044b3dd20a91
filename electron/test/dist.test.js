'use strict';
// `npm run dist:dir` with the REAL electron-builder (26, from package-lock.json) for
// the Linux `dir` target. Only the Electron binary is a stand-in (it cannot be
// downloaded here): PEFT_ELECTRON_DIST names a folder holding an executable
// `electron`, which electron-builder copies and renames to the product's executable.
// Then: what landed where, and the launcher's packaged path (lib/paths.js with the
// packaged resources folder, as main.js passes process.resourcesPath) runs the
// packaged bootstrapper, which reads the packaged release.json, installs the real
// frozen engine from a served signed repository, and the engine answers.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const asar = require('@electron/asar');
const paths = require('../lib/paths');
const { Launcher } = require('../lib/launcher');
const { TOOLS, need, tmp, Repo, serve } = require('./support');

const DIR = paths.ELECTRON_DIR;
const pkg = JSON.parse(fs.readFileSync(path.join(DIR, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(DIR, 'package-lock.json'), 'utf8'));

function walk(dir, base = dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? walk(p, base) : [path.relative(base, p).split(path.sep).join('/')];
  });
}
function duBytes(dir) { return walk(dir).reduce((n, f) => n + fs.lstatSync(path.join(dir, f)).size, 0); }

/** A stand-in for the Electron binary distribution: only the executable, which prints and exits. */
function standInElectron(root) {
  const dist = path.join(root, 'electron-dist');
  fs.mkdirSync(dist, { recursive: true });
  fs.writeFileSync(path.join(dist, 'electron'), '#!/bin/sh\necho "stand-in for the Electron binary" "$@"\n');
  fs.chmodSync(path.join(dist, 'electron'), 0o755);
  fs.writeFileSync(path.join(dist, 'LICENSE'), 'stand-in\n');
  return dist;
}

function npmRun(script, args, env, cwd = DIR) {
  return spawnSync('npm', ['run', '--silent', script, '--', ...args], { cwd, env, encoding: 'utf8', timeout: 240000 });
}

test('npm scripts: dist per OS through scripts/dist.js; electron-builder 26 pinned exact; no electron package', () => {
  assert.equal(pkg.devDependencies['electron-builder'], '26.18.1');
  assert.match(pkg.dependencies['electron-updater'], /^\d+\.\d+\.\d+$/, 'electron-updater pinned exact');
  assert.equal(lock.packages['node_modules/electron-builder'].version, '26.18.1');
  assert.equal(lock.packages['node_modules/electron'], undefined, 'the electron package (whose install downloads the binary) is not installed');
  for (const [name, flag] of [['dist', ''], ['dist:dir', '--dir'], ['dist:linux', '--linux'], ['dist:win', '--win'], ['dist:mac', '--mac']]) {
    assert.equal(pkg.scripts[name], `node scripts/dist.js${flag ? ` ${flag}` : ''}`, name);
  }
});

test('dist refuses to build without its inputs and names them', () => {
  const root = tmp();
  const r = npmRun('dist:dir', [], { ...process.env, PEFT_BOOTSTRAP_BIN: path.join(root, 'peft-bootstrap'), PEFT_RELEASE_JSON: path.join(root, 'release.json') });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /the bootstrapper .*peft-bootstrap does not exist: build it .*PEFT_BOOTSTRAP_BIN/);
  fs.writeFileSync(path.join(root, 'peft-bootstrap'), 'a stand-in: dist only copies it');
  fs.writeFileSync(path.join(root, 'release.json'), '{"manifest_url": "ftp://x/"}');
  const r2 = npmRun('dist:dir', [], { ...process.env, PEFT_BOOTSTRAP_BIN: path.join(root, 'peft-bootstrap'), PEFT_RELEASE_JSON: path.join(root, 'release.json') });
  assert.equal(r2.status, 2, r2.stderr);
  assert.match(r2.stderr, /release\.json: manifest_url must be an http\(s\):\/\/ or file:\/\/ URL \(got "ftp:\/\/x\/"\)/);
});

test('npm run dist:dir packs the Linux app with the real electron-builder; the launcher finds and runs the packaged bootstrapper', { timeout: 300000 }, async (t) => {
  if (process.platform !== 'linux') { t.skip('the Linux dir target is checked on Linux'); return; }
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const keyLine = fs.readFileSync(repo.pub, 'utf8').trim().split('\n').pop().trim();
  const releaseJson = path.join(root, 'release.json');
  fs.writeFileSync(releaseJson, JSON.stringify({ manifest_url: srv.manifest, channel: 'stable', trusted_keys: [keyLine] }, null, 2));
  const out = path.join(root, 'out');
  const env = { ...process.env, PEFT_ELECTRON_DIST: standInElectron(root), PEFT_BOOTSTRAP_BIN: TOOLS.bootstrap, PEFT_RELEASE_JSON: releaseJson };
  for (const k of ['CSC_LINK', 'WIN_CSC_LINK', 'GH_TOKEN']) delete env[k];
  const t0 = Date.now();
  const r = npmRun('dist:dir', [`-c.directories.output=${out}`], env);
  assert.equal(r.status, 0, `dist:dir failed:\n${r.stdout}\n${r.stderr}`);
  t.diagnostic(`electron-builder dir target: ${Date.now() - t0} ms`);
  assert.match(r.stderr, /app updates from http:\/\/127\.0\.0\.1:\d+\/app\/stable\//);

  const app = path.join(out, 'linux-unpacked');
  const res = path.join(app, 'resources');
  // the stand-in binary, renamed to the product's executable
  assert.ok(paths.isExecutable(path.join(app, 'peft-studio')), 'electron renamed to peft-studio');
  assert.match(fs.readFileSync(path.join(app, 'peft-studio'), 'utf8'), /stand-in/);
  // resources/bin: the bootstrapper (executable, byte-identical) and release.json
  const bin = path.join(res, 'bin', 'peft-bootstrap');
  assert.ok(paths.isExecutable(bin), 'resources/bin/peft-bootstrap is executable');
  assert.ok(fs.readFileSync(bin).equals(fs.readFileSync(TOOLS.bootstrap)), 'the bootstrapper is copied as built');
  assert.equal(fs.readFileSync(path.join(res, 'bin', 'release.json'), 'utf8'), fs.readFileSync(releaseJson, 'utf8'));
  assert.deepEqual(fs.readdirSync(path.join(res, 'bin')).sort(), ['peft-bootstrap', 'release.json']);
  // electron-updater's feed, derived from release.json's manifest_url
  assert.match(fs.readFileSync(path.join(res, 'app-update.yml'), 'utf8'), /provider: generic\nurl: http:\/\/127\.0\.0\.1:\d+\/app\/stable\//);

  // app.asar: the app and its one runtime dependency tree; no engine, tests, bundles
  const entries = asar.listPackage(path.join(res, 'app.asar')).map((e) => e.split(path.sep).join('/').replace(/^\//, ''));
  const files = entries.filter((e) => !asar.statFile(path.join(res, 'app.asar'), e).files);
  const own = files.filter((f) => !f.startsWith('node_modules/'));
  const lib = fs.readdirSync(path.join(DIR, 'lib')).filter((f) => f.endsWith('.js')).map((f) => `lib/${f}`);
  for (const f of ['package.json', 'main.js', 'preload.js', 'ui/progress.html', 'ui/progress.js', ...lib]) assert.ok(own.includes(f), `${f} in app.asar`);
  for (const f of own) assert.match(f, /^(package\.json|main\.js|preload\.js|lib\/[^/]+\.js|ui\/[^/]+\.(html|css|js))$/, `unexpected ${f} in app.asar`);
  const modules = new Set(files.filter((f) => f.startsWith('node_modules/')).map((f) => f.split('/').slice(1, f.startsWith('node_modules/@') ? 3 : 2).join('/')));
  const runtime = [...new Set(Object.keys(lock.packages).filter((k) => k.startsWith('node_modules/') && !lock.packages[k].dev)
    .map((k) => k.slice(k.lastIndexOf('node_modules/') + 13)))];
  assert.deepEqual([...modules].sort(), runtime.sort(), 'node_modules in app.asar = the runtime dependencies of package-lock.json');
  assert.ok(modules.has('electron-updater'));
  for (const f of files) {
    assert.doesNotMatch(f, /(^|\/)(test|tests)\/|\.test\.js$|^headless\.js$|^scripts\/|^build\//, `no test or build files: ${f}`);
    assert.doesNotMatch(f, /peft_engine|peft-backend-bundles|\.zip$|\.py$|\.map$/, `no engine, bundle or source map: ${f}`);
  }
  const packed = JSON.parse(asar.extractFile(path.join(res, 'app.asar'), 'package.json').toString());
  assert.equal(packed.main, 'main.js');
  assert.equal(packed.version, pkg.version);
  for (const f of walk(app)) assert.doesNotMatch(f, /peft_engine|peft-backend-bundles|\.zip$/, `no engine in the app folder: ${f}`);

  const appBytes = duBytes(res);
  t.diagnostic(`resources/ (everything but Electron): ${appBytes} bytes (app.asar ${fs.statSync(path.join(res, 'app.asar')).size}, ` +
    `peft-bootstrap ${fs.statSync(bin).size})`);

  // the launcher's packaged path: main.js passes process.resourcesPath = <app>/resources
  const env2 = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PEFT_')));
  assert.equal(paths.bootstrapperPath(env2, res), bin, 'lib/paths.js finds the packaged bootstrapper');
  const launcher = new Launcher({
    mode: 'production', bootstrap: paths.bootstrapperPath(env2, res), uiVersion: pkg.version, appDir: path.join(root, 'appdir'),
    env: { ...env2, PEFT_CACHE_DIR: path.join(root, 'cache'), PEFT_LOCK_TIMEOUT: '20' },
  });
  const events = [];
  launcher.on('event', (ev) => events.push(ev));
  t.after(() => launcher.stop());
  const engine = await launcher.start({});
  assert.ok(engine, `the packaged path served no engine; events:\n${events.map((e) => JSON.stringify(e)).join('\n')}`);
  const ready = events.find((e) => e.event === 'ready');
  assert.equal(ready.source, 'network', 'installed from the repository release.json names (no PEFT_MANIFEST_URL set)');
  assert.ok(srv.hits.some((h) => h.endsWith('/channels/stable/manifest.json')));
  const running = events.find((e) => e.event === 'engine' && e.state === 'running');
  assert.ok(ready.executable.startsWith(path.join(root, 'cache')), `the engine runs from the cache: ${ready.executable}`);
  const health = await (await fetch(`${running.url}/health`)).json();
  assert.equal(health.status, 'ok');
  await launcher.stop();
});

test('an unsigned build says so, per OS, and names what would sign it', () => {
  const { signingWarnings } = require('../scripts/dist');
  assert.deepEqual(signingWarnings({}, 'linux'), [], 'Linux has no code signing');
  const [win] = signingWarnings({}, 'win32');
  assert.match(win, /^UNSIGNED Windows build: no WIN_CSC_LINK\/CSC_LINK .*SmartScreen will warn users about the installer, the app and peft-bootstrap\.exe/);
  assert.deepEqual(signingWarnings({ WIN_CSC_LINK: 'x.pfx' }, 'win32'), []);
  const mac = signingWarnings({}, 'darwin');
  assert.equal(mac.length, 2);
  assert.match(mac[0], /UNSIGNED macOS build .*no CSC_LINK/);
  assert.match(mac[1], /NOT NOTARIZED: set APPLE_API_KEY, APPLE_API_KEY_ID and APPLE_API_ISSUER/);
  assert.deepEqual(signingWarnings({ CSC_LINK: 'x', APPLE_API_KEY: 'k' }, 'darwin'), []);
});
