'use strict';
// The words of the windows (ui/describe.js, ui/engineinfo.js) and the small plain
// modules behind them (settings, release.json, paths), under node --test.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const D = require('../ui/describe.js');
const E = require('../ui/engineinfo.js');
const settings = require('../lib/settings');
const release = require('../lib/release');
const paths = require('../lib/paths');
const { tmp } = require('./support');

const FLAGGY = /(^|\s)--[a-z]|PEFT_/;

test('every reason has its own title and actions; none names a flag or a variable', () => {
  const titles = new Set();
  for (const reason of D.REASONS) {
    const a = D.errorAdvice({ reason, exit_code: 3 });
    assert.ok(a.title && a.body && a.actions.length, reason);
    assert.doesNotMatch(`${a.title} ${a.body}`, FLAGGY, reason);
    for (const act of a.actions) assert.ok(D.ACTION_LABELS[act], `${reason}: label for ${act}`);
    titles.add(a.title);
  }
  assert.equal(titles.size, D.REASONS.length, 'one title per reason');
  // the titles that named the wrong problem before
  assert.equal(D.errorAdvice({ reason: 'not_found', exit_code: 3 }).title, "The engine isn't on the download server");
  assert.match(D.errorAdvice({ reason: 'expired', exit_code: 4 }).title, /out of date/);
  assert.doesNotMatch(D.errorAdvice({ reason: 'expired', exit_code: 4 }).body, /alters files/);
  assert.match(D.errorAdvice({ reason: 'permission', exit_code: 6 }).title, /can't write/);
  assert.deepEqual(D.errorAdvice({ reason: 'permission', exit_code: 6 }).actions.slice(0, 1), ['location']);
  assert.deepEqual(D.errorAdvice({ reason: 'disk_full', exit_code: 6 }).actions.slice(0, 1), ['location']);
  assert.ok(D.errorAdvice({ reason: 'not_configured', exit_code: 2 }).actions.includes('folder'));
  assert.equal(D.errorAdvice({ reason: 'not_configured', exit_code: 2 }).actions.includes('retry'), false, 'no "Try again" loop');
});

test('a reason the window does not know falls back to the exit code', () => {
  assert.equal(D.errorAdvice({ reason: 'from_the_future', exit_code: 3 }).title, D.errorAdvice({ reason: 'unreachable' }).title);
  assert.equal(D.errorAdvice({ exit_code: 5 }).title, 'No engine fits this computer yet');
  assert.equal(D.errorAdvice({ exit_code: 7 }).title, 'Another PEFT Studio is installing the engine');
  assert.ok(D.errorAdvice({ exit_code: 6 }).actions.includes('location'));
  assert.equal(D.errorAdvice({}).title, 'Something went wrong inside PEFT Studio');
});

test('windowDetail keeps the plain words of message and hint, drops every clause with a flag, variable or command', () => {
  assert.equal(D.windowDetail({ message: 'not enough free space in /d: 63 bytes are needed', hint: 'free 4.2 GB on the disk holding /d, or set PEFT_CACHE_DIR to a larger disk' }),
    'not enough free space in /d: 63 bytes are needed — free 4.2 GB on the disk holding /d');
  assert.equal(D.windowDetail({ message: 'could not download http://x/m.json: Connection refused (os error 111)', hint: 'check the internet connection, or install from a pre-fetched folder with --offline-dir' }),
    'could not download http://x/m.json: Connection refused (os error 111) — check the internet connection');
  assert.equal(D.windowDetail({ message: 'run `peft-bootstrap rollback --allow 1.2.0` (see --help)' }), '');
  assert.equal(D.windowDetail({ message: 'the linux-x86_64-cpu engine is fine (use -v for more)' }), 'the linux-x86_64-cpu engine is fine');
});

test('retry words: what happened, when the next try is, which attempt', () => {
  const ev = { event: 'retry', attempt: 2, max_attempts: 5, wait_ms: 1500, reason: 'unreachable', message: 'connection refused' };
  assert.equal(D.retryWords(ev), 'Connection lost — trying again in 2 s (attempt 2 of 5)');
  assert.equal(D.retryWords(ev, 400), 'Connection lost — trying again in 1 s (attempt 2 of 5)');
  assert.equal(D.retryWords(ev, 0), 'Connection lost — trying again now (attempt 2 of 5)');
  assert.equal(D.retryWords({ ...ev, reason: 'server_error', attempt: 3 }, 2000), 'The server had a problem — trying again in 2 s (attempt 3 of 5)');
});

test('transfer words: a resumed download says so; speed comes from the bytes of this run; copying', () => {
  assert.equal(D.transferWords({ phase: 'download', done: 7_700_000, total: 24_100_000, resumedFrom: 7_700_000 }), 'Resuming at 7.7 MB of 24.1 MB');
  assert.equal(D.transferWords({ phase: 'download', done: 9_700_000, total: 24_100_000, resumedFrom: 7_700_000, speed: 1_000_000 }),
    '9.7 MB of 24.1 MB · resumed at 7.7 MB · 1 MB/s · 15 s left');
  assert.equal(D.transferWords({ phase: 'download', done: 1_000_000, total: 2_000_000, speed: 500_000, stalled: true }), '1 MB of 2 MB');
  assert.equal(D.transferWords({ phase: 'copy', done: 1_000_000, total: 2_000_000, speed: 1_000_000 }), '1 MB of 2 MB · 1 MB/s · 1 s left');
});

test('Apple Silicon is named on every path: ids say arm64, the bootstrapper says arm64, aarch64 is accepted', () => {
  assert.equal(paths.cpuVariant('darwin', 'arm64'), 'macos-arm64-cpu');
  assert.equal(paths.cpuVariant('linux', 'arm64'), 'linux-arm64-cpu');
  assert.equal(paths.cpuVariant('linux', 'x64'), 'linux-x86_64-cpu');
  assert.equal(paths.cpuVariant('win32', 'x64'), 'windows-x86_64-cpu');
  for (const arch of ['arm64', 'aarch64']) {
    const hw = { os: 'macos', arch, cpu: { cores: 10 } };
    assert.equal(D.machineWords(hw), 'Apple Silicon (M-series)');
    assert.equal(D.engineSentence(hw, 'macos-arm64-cpu'), 'CPU engine for your Mac with Apple Silicon (M-series)');
  }
  assert.equal(D.engineSentence({ os: 'macos', arch: 'arm64' }, 'macos-arm64-metal'), 'Metal engine for your Mac with Apple Silicon (M-series)');
  assert.equal(D.machineWords({ os: 'macos', arch: 'x86_64', cpu: { cores: 8 } }), '8 CPU cores, no NVIDIA graphics card found');
  assert.equal(E.deviceWords({ device: 'mps' }, { os: 'macos', arch: 'arm64' }), 'The Apple Silicon (M-series) graphics (Metal)');
});

test('settings: remembered in a small JSON, only known keys, passed as --cache-dir', () => {
  const dir = tmp();
  assert.deepEqual(settings.load(dir), {});
  settings.save(dir, { cacheDir: '/mnt/big/PEFT Studio engine' });
  settings.save(dir, { variant: 'linux-x86_64-cpu' });
  assert.deepEqual(settings.load(dir), { cacheDir: '/mnt/big/PEFT Studio engine', variant: 'linux-x86_64-cpu' });
  assert.deepEqual(settings.settingsArgs(settings.load(dir)), ['--cache-dir', '/mnt/big/PEFT Studio engine']);
  settings.save(dir, { variant: 'auto' });
  assert.deepEqual(settings.load(dir), { cacheDir: '/mnt/big/PEFT Studio engine' });
  assert.throws(() => settings.save(dir, { manifestUrl: 'http://x' }), /unknown setting/);
  fs.writeFileSync(path.join(dir, settings.FILE), '{ not json');
  assert.deepEqual(settings.load(dir), {}, 'a damaged file is as good as none');
});

test('settings: another location gets its own folder and must be writable', () => {
  const root = tmp();
  const ok = settings.prepareLocation(root);
  assert.equal(ok.ok, true);
  assert.equal(ok.dir, path.join(root, 'PEFT Studio engine'));
  assert.ok(fs.statSync(ok.dir).isDirectory());
  assert.deepEqual(fs.readdirSync(ok.dir), [], 'the write probe is removed');
  const file = path.join(root, 'a-file');
  fs.writeFileSync(file, 'x');
  const bad = settings.prepareLocation(file);
  assert.equal(bad.ok, false);
  assert.match(bad.problem, /cannot keep its engine in .*a-file.*Choose another folder/);
});

test('release.json: ui_url as URL or a path beside it; absent and invalid files say so', () => {
  const dir = tmp();
  const bin = path.join(dir, 'peft-bootstrap');
  assert.deepEqual(release.read(bin), { file: path.join(dir, 'release.json'), config: null });
  assert.equal(release.uiUrl(release.read(bin)), null);
  fs.writeFileSync(path.join(dir, 'release.json'), JSON.stringify({ manifest_url: 'https://x/m.json', ui_url: 'ui/index.html' }));
  assert.equal(release.uiUrl(release.read(bin)), `file://${path.join(dir, 'ui', 'index.html')}`);
  fs.writeFileSync(path.join(dir, 'release.json'), JSON.stringify({ manifest_url: 'https://x/m.json', ui_url: 'https://app.example.org/' }));
  assert.equal(release.uiUrl(release.read(bin)), 'https://app.example.org/');
  fs.writeFileSync(path.join(dir, 'release.json'), JSON.stringify({ manifest_url: 'https://x/m.json', ui_url: 'javascript:alert(1)' }));
  assert.equal(release.uiUrl(release.read(bin)), null, 'only http(s), file or a path');
  fs.writeFileSync(path.join(dir, 'release.json'), '{"manifest_url": ');
  const bad = release.read(bin);
  assert.equal(bad.config, null);
  assert.match(bad.problem, /release\.json is not valid JSON/);
});

test('engine page model: installed rows with sizes and marks, variants with verdicts, update state, self-test', () => {
  const status = {
    current: { version: '1.2.0', variant: 'linux-x86_64-cuda12.8', previous: '1.1.0-linux-x86_64-cuda12.8' },
    installed: [
      { version: '1.1.0', variant: 'linux-x86_64-cuda12.8', bytes: 4_300_000_000, current: false },
      { version: '1.0.0', variant: 'linux-x86_64-cpu', bytes: 210_000_000, current: false },
      { version: '1.2.0', variant: 'linux-x86_64-cuda12.8', bytes: 4_400_000_000, current: true },
      { version: '1.3.0', variant: 'linux-x86_64-cuda12.8', bytes: 4_500_000_000, current: false },
    ],
    staged: { version: '1.3.0', variant: 'linux-x86_64-cuda12.8', dir: '/c/versions/1.3.0' },
    refused: [{ version: '1.0.0', variant: 'linux-x86_64-cpu', reason: 'health check failed', allow_command: 'peft-bootstrap ...' }],
  };
  const rows = E.installedRows(status);
  assert.deepEqual(rows.map((r) => r.version), ['1.2.0', '1.3.0', '1.1.0', '1.0.0']);
  assert.equal(rows[0].size, '4.4 GB');
  assert.equal(rows[0].current, true);
  assert.equal(rows[1].staged, true);
  assert.equal(rows[3].refused, true);
  assert.equal(E.oldCount(status), 1, 'the current, previous and staged installs stay');
  const choices = E.variantChoices({ verdicts: [
    { version: '1.2.0', variant: 'linux-x86_64-cpu', fits: true, reason: 'runs on any x86_64 CPU' },
    { version: '1.2.0', variant: 'linux-x86_64-cuda12.8', fits: true, reason: 'driver 570 ≥ 550' },
    { version: '1.1.0', variant: 'linux-x86_64-cuda13.0', fits: false, reason: 'needs NVIDIA driver ≥ 580' },
    { version: '1.1.0', variant: 'linux-x86_64-cpu', fits: true, reason: 'old' },
  ] }, 'linux-x86_64-cuda12.8');
  assert.deepEqual(choices.map((c) => [c.id, c.fits, c.current]), [
    ['linux-x86_64-cuda12.8', true, true], ['linux-x86_64-cpu', true, false], ['linux-x86_64-cuda13.0', false, false]]);
  assert.equal(choices[1].version, '1.2.0', 'the newest release of each variant');
  assert.equal(choices[2].why, 'needs NVIDIA driver ≥ 580');
  assert.deepEqual(E.updateState({ state: 'staged', version: '1.3.0' }), { text: 'Version 1.3.0 is downloaded and ready.', restart: true });
  assert.equal(E.updateState({ state: 'up_to_date' }).restart, false);
  assert.equal(E.cmpVersion('1.10.0', '1.9.2'), 1);

  const run = E.selfTestView({ state: 'done', device: 'cuda:0', device_name: 'NVIDIA GeForce RTX 4090', steps: 8, steps_done: 8, steps_per_second: 41.3, losses: [2.3, 2.0, 1.6, 1.2] });
  assert.equal(run.title, 'The engine can train on this computer');
  assert.deepEqual(run.lines, [['Device', 'NVIDIA GeForce RTX 4090 (cuda:0)'], ['Steps', '8 of 8'], ['Speed', '41 steps per second'], ['Loss', '2.300 → 1.200']]);
  const pts = run.points.split(' ').map((p) => p.split(',').map(Number));
  assert.equal(pts.length, 4);
  assert.ok(pts.every((p, i) => i === 0 || p[1] > pts[i - 1][1]), 'falling loss is drawn going down');
  assert.equal(E.selfTestView({ state: 'done', losses: [1, 1.2] }).kind, 'warn');
  const core = E.selfTestView({ state: 'unavailable', message: 'This engine cannot train: it was built without PyTorch' });
  assert.equal(core.title, 'This engine cannot train');
  assert.match(core.message, /built without PyTorch.*Switch to an engine that can train/);
});

test('development mode finds the venv tests/quickstart makes, or names the command that makes one', () => {
  assert.equal(paths.devPythonChoice({ PEFT_DEV_PYTHON: '/opt/py/bin/python' }).python, '/opt/py/bin/python');
  // a checkout right after tests/quickstart: only backend/build-bundle's venv exists
  const repo = tmp();
  const py = path.join(repo, 'target', 'venvs', 'core-cpu', 'bin', 'python');
  fs.mkdirSync(path.dirname(py), { recursive: true });
  fs.symlinkSync(process.execPath, py);
  assert.deepEqual(paths.devPythonChoice({}, repo), { python: py, venv: path.join(repo, 'target', 'venvs', 'core-cpu') });
  assert.equal(paths.devPythonProblem({}, repo), null);
  // the dev venv of backend/run-tests wins over it
  const dev = path.join(repo, 'target', 'venvs', 'dev', 'bin', 'python');
  fs.mkdirSync(path.dirname(dev), { recursive: true });
  fs.symlinkSync(process.execPath, dev);
  assert.equal(paths.devPythonChoice({}, repo).python, dev);
  // none at all, and no python on PATH: the exact command that makes one
  const bare = tmp();
  const problem = paths.devPythonProblem({ PATH: path.join(bare, 'empty') }, bare);
  assert.match(problem, /found none: no venv under .*target\/venvs/);
  assert.ok(problem.includes(`backend/build-bundle --variant ${paths.cpuVariant()} --profile core --out target/bundles/dev --venv-only`), problem);
  assert.match(problem, /PEFT_DEV_PYTHON/);
});
