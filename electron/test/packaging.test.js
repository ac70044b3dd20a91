'use strict';
// The electron-builder config, checked as data (electron-builder itself is not
// installed here): what goes into the installer, and what never does. And the
// lab's peft-backend-bundles/ folder beside the app is found.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const paths = require('../lib/paths');
const { tmp } = require('./support');
const { candidates, findBundlesFolder } = require('../lib/offline');

const DIR = paths.ELECTRON_DIR;
const config = JSON.parse(fs.readFileSync(path.join(DIR, 'electron-builder.json'), 'utf8'));
const pkg = JSON.parse(fs.readFileSync(path.join(DIR, 'package.json'), 'utf8'));

// electron-builder's file patterns: minimatch globs, later "!" patterns exclude.
function globToRegex(glob) {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') { re += '.*'; i++; if (glob[i + 1] === '/') i++; } else if (c === '*') re += '[^/]*';
    else if (c === '{') { const end = glob.indexOf('}', i); re += `(${glob.slice(i + 1, end).split(',').map((s) => s.replace(/[.+^$()|[\]\\]/g, '\\$&')).join('|')})`; i = end; } else if ('.+^$()|[]\\'.includes(c)) re += `\\${c}`;
    else re += c;
  }
  return new RegExp(`^${re}$`);
}
function packaged(files, patterns) {
  return files.filter((f) => {
    let inc = false;
    for (const p of patterns) {
      if (p.startsWith('!')) { if (globToRegex(p.slice(1)).test(f)) inc = false; } else if (globToRegex(p).test(f)) inc = true;
    }
    return inc;
  });
}
function walk(dir, base = dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return d.name === 'node_modules' ? [] : walk(p, base);
    return [path.relative(base, p).split(path.sep).join('/')];
  });
}

test('the app part of the installer is the launcher code and the window, nothing else', (t) => {
  const files = packaged(walk(DIR), config.files);
  const expected = ['package.json', 'main.js', 'preload.js', 'ui/progress.html', 'ui/progress.css', 'ui/progress.js', 'ui/describe.js',
    'ui/engine.html', 'ui/engine.css', 'ui/engine.js', 'ui/engineinfo.js',
    ...fs.readdirSync(path.join(DIR, 'lib')).map((f) => `lib/${f}`)];
  assert.deepEqual(files.sort(), expected.sort());
  const bytes = files.reduce((n, f) => n + fs.statSync(path.join(DIR, f)).size, 0);
  assert.ok(bytes < 512 * 1024, `app files: ${bytes} bytes`);
  t.diagnostic(`app files: ${files.length}, ${bytes} bytes`);
  // every module main.js requires is in the package
  const requires = [...fs.readFileSync(path.join(DIR, 'main.js'), 'utf8').matchAll(/require\('\.\/(lib\/[a-z]+)'\)/g)].map((m) => `${m[1]}.js`);
  for (const r of requires) assert.ok(files.includes(r), `${r} is packaged`);
});

test('every platform carries its bootstrapper and release.json as extra resources in bin/, never a backend bundle', () => {
  // scripts/dist.js stages the platform's peft-bootstrap[.exe] and release.json into
  // ../target/dist-inputs/bin; that one folder becomes <resources>/bin (where lib/paths.js looks)
  assert.deepEqual(config.extraResources, [{ from: '../target/dist-inputs/bin', to: 'bin' }]);
  for (const platform of ['linux', 'win', 'mac']) assert.equal(config[platform].extraResources, undefined, platform);
  assert.equal(config.extraFiles, undefined);
  const dist = fs.readFileSync(path.join(DIR, 'scripts', 'dist.js'), 'utf8');
  assert.match(dist, /path\.join\(TARGET, 'dist-inputs', 'bin'\)/);
  assert.match(dist, /path\.join\(TARGET, 'release', exe\)/, 'default: the release build');
  const text = JSON.stringify({ ...config, files: config.files.filter((f) => !f.startsWith('!')) });
  for (const banned of ['peft_engine', 'bundles', 'venvs', 'backend', '.zip', 'torch']) assert.ok(!text.includes(banned), `config mentions ${banned}`);
  for (const never of ['!**/peft_engine/**', '!**/peft-backend-bundles/**', '!**/*.zip', '!**/*.py']) assert.ok(config.files.includes(never), never);
});

test('electron is never downloaded by npm ci: no electron dependency, version pinned in the config', () => {
  const deps = { ...pkg.dependencies, ...pkg.devDependencies, ...pkg.optionalDependencies };
  assert.equal(deps.electron, undefined);
  assert.deepEqual(Object.keys(pkg.dependencies || {}), ['electron-updater'], 'the one runtime dependency shipped in app.asar');
  assert.match(config.electronVersion, /^\d+\.\d+\.\d+$/);
  assert.ok(Number(config.electronVersion.split('.')[0]) >= 39, `a current Electron major (${config.electronVersion})`);
  const lock = JSON.parse(fs.readFileSync(path.join(DIR, 'package-lock.json'), 'utf8'));
  const installed = Object.keys(lock.packages).filter((p) => p);
  assert.ok(!installed.some((p) => /(^|\/)node_modules\/electron$/.test(p)), 'no electron package in the lock');
  // the one install script in the tree (electron-winstaller's) only picks its bundled 7-Zip; nothing downloads
  const scripted = installed.filter((p) => lock.packages[p].hasInstallScript).map((p) => p.replace(/^.*node_modules\//, ''));
  assert.deepEqual(scripted.sort(), ['electron-winstaller']);
  assert.equal(pkg.main, 'main.js');
});

test('the packaged bootstrapper is found in <resources>/bin', () => {
  const res = tmp();
  fs.mkdirSync(path.join(res, 'bin'));
  const bin = path.join(res, 'bin', `peft-bootstrap${paths.EXE}`);
  fs.writeFileSync(bin, '#!/bin/sh\n');
  fs.chmodSync(bin, 0o755);
  assert.equal(paths.bootstrapperPath({}, res), bin);
  assert.equal(paths.bootstrapperPath({ PEFT_BOOTSTRAP: '/x/y' }, res), path.resolve('/x/y'), 'PEFT_BOOTSTRAP wins');
});

test("a lab's peft-backend-bundles/ beside the app is found; not without channels/, not when the user chose a source", () => {
  const stick = tmp();
  const appDir = path.join(stick, 'PEFT Studio');
  fs.mkdirSync(appDir);
  const exe = path.join(appDir, 'peft-studio');
  assert.equal(findBundlesFolder(exe, {}), null, 'nothing there');
  fs.mkdirSync(path.join(stick, 'peft-backend-bundles'));
  assert.equal(findBundlesFolder(exe, {}), null, 'a folder without channels/ is not a repository');
  fs.mkdirSync(path.join(stick, 'peft-backend-bundles', 'channels'));
  assert.equal(findBundlesFolder(exe, {}), path.join(stick, 'peft-backend-bundles'), 'beside the app folder');
  assert.equal(findBundlesFolder(exe, { PEFT_MANIFEST_URL: 'https://x' }), null);
  assert.equal(findBundlesFolder(exe, { PEFT_OFFLINE_DIR: '/elsewhere' }), null);
  // AppImage: the app runs from a mount; the folder sits beside the .AppImage file
  const other = tmp();
  fs.mkdirSync(path.join(other, 'peft-backend-bundles', 'channels'), { recursive: true });
  assert.equal(findBundlesFolder('/tmp/.mount_PEFTxyz/peft-studio', { APPIMAGE: path.join(other, 'PEFT Studio.AppImage') }), path.join(other, 'peft-backend-bundles'));
  assert.ok(candidates('/Volumes/S/PEFT Studio.app/Contents/MacOS/PEFT Studio', {}).includes('/Volumes/S/peft-backend-bundles'));
});
