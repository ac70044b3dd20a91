'use strict';
// The windows as a person meets them, in Debian's Chromium (playwright-core):
// - the progress window for every error `reason` (title, actions, no flag or variable
//   name anywhere in the page), a retry, a resumed download, copying, a repair;
// - the Engine page (ui/engine.html) through the same bridge main.js gives it, answered
//   by lib/enginectl.js: here against a small stand-in engine that serves the self-test
//   API (INTERFACES §5) over real HTTP, so the page's polling, chart and words are real;
// - every one of them at 100 %, 125 %, 150 % zoom (Electron's View menu; a zoomed
//   page lays out in a viewport 1/zoom as wide, at zoom times the pixel density) and
//   360 px wide: no sideways scrolling, no clipped title or button, every button
//   reachable by scrolling.
// Screenshots go to PEFT_SCREENSHOT_DIR (default target/screenshots/); docs/images/
// holds chosen ones.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { need, CHROMIUM } = require('./support');
const paths = require('../lib/paths');
const enginectl = require('../lib/enginectl');
const D = require('../ui/describe.js');

const UI = path.join(paths.ELECTRON_DIR, 'ui');
const STREAMS = path.join(__dirname, 'fixtures', 'streams');
const SHOTS = process.env.PEFT_SCREENSHOT_DIR || path.join(paths.REPO_DIR, 'target', 'screenshots');
const stream = (name) => fs.readFileSync(path.join(STREAMS, `${name}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const WINDOW = { width: 720, height: 640 }; // main.js's default window
const LAYOUTS = [
  { name: '100', zoom: 1, ...WINDOW },
  { name: '125', zoom: 1.25, ...WINDOW },
  { name: '150', zoom: 1.5, ...WINDOW },
  { name: '360px', zoom: 1, width: 360, height: 640 },
  { name: '360px-125', zoom: 1.25, width: 360, height: 640 },
];

let browser;
async function open(t, file, layout = LAYOUTS[0], { bridge } = {}) {
  if (!browser) {
    const { chromium } = require('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
  }
  const page = await browser.newPage({
    viewport: { width: Math.round(layout.width / layout.zoom), height: Math.round(layout.height / layout.zoom) },
    deviceScaleFactor: layout.zoom,
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  if (bridge) {
    // what preload.js exposes, answered in this process (as main.js answers it)
    await page.exposeFunction('peftTestAsk', (name, arg) => bridge.ask(name, arg));
    await page.exposeFunction('peftTestAct', (name, arg) => bridge.act(name, arg));
    await page.addInitScript(() => {
      window.peft = { ask: (n, a) => window.peftTestAsk(n, a), act: (n, a) => { window.peftTestAct(n, a); }, onEvent: () => {} };
    });
  }
  await page.goto(`file://${path.join(UI, file)}`);
  t.after(async () => { assert.deepEqual(errors, [], 'no script errors in the page'); await page.close(); });
  return page;
}
test.after(async () => { if (browser) await browser.close(); });

const feed = (page, events) => page.evaluate((evs) => { for (const e of evs) window.peftView.feed(e, e.t); }, events);
const text = (page, sel) => page.locator(sel).innerText();
const actions = (page) => page.locator('#actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), animations: 'disabled', fullPage: true });
}

/** Nothing cut off: returns the problems found (empty when the page holds). */
function layoutProblems(page) {
  return page.evaluate(() => {
    const probs = [];
    const root = document.scrollingElement;
    const vw = root.clientWidth;
    const desc = (el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} "${(el.innerText || '').trim().slice(0, 40)}"`;
    if (root.scrollWidth > vw + 1) probs.push(`the page scrolls sideways (${root.scrollWidth} > ${vw})`);
    for (const el of [document.documentElement, document.body]) {
      if (['hidden', 'clip'].includes(getComputedStyle(el).overflowY) && root.scrollHeight > root.clientHeight + 1) probs.push(`${el.tagName} cannot scroll`);
    }
    for (const el of document.querySelectorAll('h1, h2, h3, button, p, li, dt, dd, .name, .why, .meta')) {
      if (!el.getClientRects().length) continue; // hidden
      if (el.scrollWidth > el.clientWidth + 1) probs.push(`clipped: ${desc(el)} (${el.scrollWidth} > ${el.clientWidth})`);
      const r = el.getBoundingClientRect();
      if (r.left < -0.5 || r.right > vw + 0.5) probs.push(`outside the window: ${desc(el)} (${Math.round(r.left)}..${Math.round(r.right)} of ${vw})`);
    }
    for (const b of document.querySelectorAll('button, h1, h2')) {
      if (!b.getClientRects().length) continue;
      b.scrollIntoView({ block: 'nearest' });
      const r = b.getBoundingClientRect();
      if (r.top < -0.5 || r.bottom > window.innerHeight + 0.5) probs.push(`not reachable by scrolling: ${desc(b)}`);
    }
    window.scrollTo(0, 0);
    return probs;
  });
}
async function assertHolds(page, what) {
  assert.deepEqual(await layoutProblems(page), [], what);
}

// errors as the bootstrapper words them, with the flags and variables its terminal user needs
const HW = stream('cuda-fresh')[0];
const SEL = stream('cuda-fresh')[1];
function errorFor(reason) {
  const exit = { not_configured: 2, config_invalid: 2, usage: 2, unknown_variant: 2, not_a_bundle_folder: 2, unreachable: 3, not_found: 3,
    server_error: 3, expired: 4, tampered: 4, untrusted_key: 4, downgrade: 4, no_variant: 5, incompatible: 5, permission: 6, disk_full: 6,
    storage: 6, busy: 7, internal: 1 }[reason];
  return { t: 900, event: 'error', code: 'x', reason, exit_code: exit,
    message: `${reason.replace(/_/g, ' ')} happened at /home/ada/.local/share/PEFT Studio/backend (set with --cache-dir or PEFT_CACHE_DIR)`,
    hint: 'try again later, or pass --offline-dir DIR; PEFT_MANIFEST_URL names the repository' };
}

test('every reason: its own title and actions, no flag or variable in the page, nothing cut off at any zoom', { timeout: 240000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  for (const layout of LAYOUTS) {
    const page = await open(t, 'progress.html', layout);
    for (const reason of D.REASONS) {
      await page.evaluate(() => window.peftView.reset());
      await feed(page, [HW, SEL, errorFor(reason)]);
      const advice = D.errorAdvice(errorFor(reason), { hardware: HW, variant: SEL.variant });
      assert.equal(await text(page, '#title'), advice.title, reason);
      assert.deepEqual(await actions(page), advice.actions, reason);
      const all = await page.locator('body').innerText();
      assert.doesNotMatch(all, /(^|\s)--[a-z]/m, `${reason}: a flag in the window`);
      assert.doesNotMatch(all, /PEFT_/, `${reason}: a variable in the window`);
      assert.match(await text(page, '#notice-detail'), /happened at \/home\/ada/, `${reason}: the plain part of the message stays`);
      await assertHolds(page, `${reason} at ${layout.name}`);
      if (layout.name === '100' && reason === 'disk_full') {
        // the docs' picture, with the bootstrapper's real wording
        await page.evaluate(() => window.peftView.reset());
        await feed(page, [HW, SEL, { t: 900, event: 'error', code: 'storage', reason: 'disk_full', exit_code: 6,
          message: 'not enough free space in /home/ada/.local/share/PEFT Studio/backend: 6.3 GB are needed, 2.1 GB are free',
          hint: 'free 4.2 GB on the disk holding /home/ada/.local/share/PEFT Studio/backend, or set PEFT_CACHE_DIR to a larger disk' }]);
        assert.doesNotMatch(await page.locator('body').innerText(), /PEFT_/);
        assert.match(await text(page, '#notice-detail'), /free 4\.2 GB on the disk holding/);
        await shot(page, 'progress-error-disk-full');
      }
      if (layout.name === '150' && reason === 'not_found') await shot(page, 'progress-error-not-found-150');
      if (layout.name === '360px' && reason === 'permission') await shot(page, 'progress-error-permission-360px');
    }
  }
});

test('a retry shows at once with its countdown and attempt; progress clears it', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await open(t, 'progress.html');
  await feed(page, [HW, SEL, { t: 1000, event: 'progress', phase: 'download', done: 1_000_000, total: 1_900_000_000 }]);
  await feed(page, [{ t: 2000, event: 'retry', attempt: 2, max_attempts: 5, wait_ms: 2000, reason: 'unreachable', message: 'connection refused (127.0.0.1:8080)' }]);
  assert.equal(await text(page, '#notice-heading'), 'Connection lost — trying again in 2 s (attempt 2 of 5)');
  await page.evaluate(() => window.peftView.tick(3200));
  assert.equal(await text(page, '#notice-heading'), 'Connection lost — trying again in 1 s (attempt 2 of 5)');
  await assertHolds(page, 'retry');
  await shot(page, 'progress-retry');
  await feed(page, [{ t: 4500, event: 'progress', phase: 'download', done: 2_000_000, total: 1_900_000_000 }]);
  assert.equal(await page.locator('#notice').isVisible(), false, 'the download moves again');
});

test('a resumed download says so and its speed counts only this run; copying from a folder says Copying', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await open(t, 'progress.html');
  const total = 24_143_164;
  await feed(page, [{ ...stream('cpu-fresh')[0], t: 0 }, { t: 10, event: 'selected', version: '1.0.0', variant: 'linux-x86_64-cpu', reason: 'x' },
    { t: 1000, event: 'progress', phase: 'download', done: 7_700_000, total, resumed_from: 7_700_000 }]);
  assert.equal(await text(page, '#numbers'), 'Resuming at 7.7 MB of 24.1 MB');
  // 1 MB/s for 3 s: never the 33 MB/s that counting the bytes already on disk would give
  const evs = [];
  for (let i = 1; i <= 12; i++) evs.push({ t: 1000 + i * 250, event: 'progress', phase: 'download', done: 7_700_000 + i * 250_000, total, resumed_from: 7_700_000 });
  await feed(page, evs);
  const nums = await text(page, '#numbers');
  assert.match(nums, /^10\.7 MB of 24\.1 MB · resumed at 7\.7 MB · 1 MB\/s · 1\d s left$/, nums);
  await shot(page, 'progress-resumed');

  const copy = await open(t, 'progress.html');
  await feed(copy, [{ t: 10, event: 'selected', version: '1.0.0', variant: 'linux-x86_64-cpu', reason: 'x' },
    { t: 100, event: 'progress', phase: 'copy', done: 0, total }, { t: 600, event: 'progress', phase: 'copy', done: 12_000_000, total }]);
  assert.equal(await text(copy, '#title'), 'Copying the CPU engine');
  assert.equal(await copy.locator('[data-step=download]').innerText(), 'Copy');
});

test('an engine that does not start: repairing, then "Repair the engine" offered and sent', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await open(t, 'progress.html');
  const evs = stream('cpu-cache');
  await feed(page, evs.slice(0, 2));
  await feed(page, [{ t: 5000, event: 'repair', state: 'running', reason: 'the engine exited before it listened' }]);
  assert.equal(await text(page, '#title'), 'Repairing the engine…');
  await feed(page, [{ t: 6000, event: 'repair', state: 'failed', message: 'x' },
    { t: 6001, event: 'engine', state: 'failed', message: 'the engine exited before it listened (status 255); run peft-bootstrap verify --repair' }]);
  assert.equal(await text(page, '#title'), 'The engine could not start');
  assert.equal((await actions(page))[0], 'repair');
  assert.doesNotMatch(await page.locator('body').innerText(), /--repair|peft-bootstrap/);
  for (const layout of LAYOUTS.slice(1)) {
    await page.setViewportSize({ width: Math.round(layout.width / layout.zoom), height: Math.round(layout.height / layout.zoom) });
    await assertHolds(page, `engine failed at ${layout.name}`);
  }
  await page.click('button[data-action=repair]');
  assert.deepEqual(await page.evaluate(() => window.peftActions), ['repair']);
});

test('ready is never a dead end: the engine page is offered, with the update', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await open(t, 'progress.html');
  await feed(page, stream('cpu-cache').slice(0, 3));
  assert.equal(await text(page, '#title'), 'PEFT Studio is ready');
  assert.deepEqual(await actions(page), ['engine']);
  await page.click('button[data-action=engine]');
  assert.deepEqual(await page.evaluate(() => window.peftActions), ['engine']);
});

/** A stand-in engine serving the self-test API over HTTP, token required (INTERFACES §5). */
async function standInEngine({ unavailable = false } = {}) {
  const token = 'stand-in-token';
  const tests = new Map();
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const json = (status, body) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(body)); };
    if (req.headers.authorization !== `Bearer ${token}`) return json(401, { detail: 'token' });
    if (req.method === 'POST' && req.url === '/self-test') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const steps = JSON.parse(body || '{}').steps || 8;
        tests.set('st1', { polls: 0, steps });
        json(200, { id: 'st1' });
      });
      return undefined;
    }
    const m = /^\/self-test\/([\w-]+)$/.exec(req.url);
    if (req.method === 'GET' && m && tests.has(m[1])) {
      const st = tests.get(m[1]);
      if (unavailable) return json(200, { state: 'unavailable', device: 'cpu', steps: st.steps, steps_done: 0, losses: [], message: 'This engine cannot train: it was built without PyTorch' });
      st.polls += 1;
      const done = Math.min(st.steps, st.polls * 2);
      const losses = Array.from({ length: done }, (_, i) => 2.4 * 0.85 ** i + 0.03 * (i % 2));
      return json(200, { state: done >= st.steps ? 'done' : 'running', device: 'cuda:0', device_name: 'NVIDIA GeForce RTX 4090',
        steps_done: done, steps: st.steps, steps_per_second: 38.6, losses, message: '' });
    }
    return json(404, { detail: 'no' });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, token, running: true, seen, close: () => new Promise((r) => server.close(r)) };
}

const INFO = {
  mode: 'production',
  running: { version: '1.3.0', variant: 'linux-x86_64-cuda12.8', pid: 4242,
    system: { version: '1.3.0', variant: 'linux-x86_64-cuda12.8', device: 'cuda:0', torch_available: true,
      devices: [{ index: 0, name: 'NVIDIA GeForce RTX 4090', total_memory: 25_757_220_864, type: 'cuda' }] } },
  status: {
    event: 'status', cache_dir: '/home/ada/.local/share/PEFT Studio/backend',
    current: { version: '1.3.0', variant: 'linux-x86_64-cuda12.8', dir: '/c/versions/1.3.0-linux-x86_64-cuda12.8', previous: '1.2.0-linux-x86_64-cuda12.8' },
    installed: [
      { version: '1.3.0', variant: 'linux-x86_64-cuda12.8', bytes: 4_412_000_000, current: true, installed_at: '2026-12-01T10:00:00Z', files: 1200 },
      { version: '1.2.0', variant: 'linux-x86_64-cuda12.8', bytes: 4_380_000_000, current: false, installed_at: '2026-11-01T10:00:00Z', files: 1200 },
      { version: '1.1.0', variant: 'linux-x86_64-cpu', bytes: 212_000_000, current: false, installed_at: '2026-10-01T10:00:00Z', files: 300 },
      { version: '1.3.1', variant: 'linux-x86_64-cuda12.8', bytes: 4_420_000_000, current: false, installed_at: '2026-12-05T10:00:00Z', files: 1200 },
    ],
    staged: { version: '1.3.1', variant: 'linux-x86_64-cuda12.8', dir: '/c/versions/1.3.1-linux-x86_64-cuda12.8' },
    refused: [],
  },
  detect: {
    hardware: HW,
    verdicts: [
      { event: 'verdict', version: '1.3.0', variant: 'linux-x86_64-cuda12.8', fits: true, reason: 'CUDA 12.8 build for driver 570.86.10 (CUDA 12.8), GPU 0 sm_89' },
      { event: 'verdict', version: '1.3.0', variant: 'linux-x86_64-cuda13.0', fits: false, reason: 'needs NVIDIA driver ≥ 580 for CUDA 13.0, found 570.86.10' },
      { event: 'verdict', version: '1.3.0', variant: 'linux-x86_64-cpu', fits: true, reason: 'runs on any x86_64 processor' },
    ],
  },
  update: { event: 'update', state: 'staged', version: '1.3.1', variant: 'linux-x86_64-cuda12.8' },
};

function bridgeFor(engine, info = INFO) {
  const acts = [];
  return {
    acts,
    ask: async (name, arg) => {
      switch (name) {
        case 'engine-info': return info;
        case 'selftest-start': return enginectl.selfTestStart(engine, arg);
        case 'selftest-poll': return enginectl.selfTestPoll(engine, arg);
        case 'gc': return { removed: ['1.1.0-linux-x86_64-cpu'], freed: 212_000_000 };
        default: throw new Error(name);
      }
    },
    act: (name, arg) => { acts.push(arg === undefined || arg === null ? name : [name, arg]); },
  };
}

test('the Engine page: what runs, update, switch with verdicts, installed sizes, repair, log, remove old versions', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const engine = await standInEngine();
  t.after(() => engine.close());
  const bridge = bridgeFor(engine);
  const page = await open(t, 'engine.html', LAYOUTS[0], { bridge });
  await page.waitForSelector('body[data-state=shown]');
  assert.equal(await text(page, '#subtitle'), 'CUDA 12.8 engine for your NVIDIA GeForce RTX 4090 is running (1.3.0).');
  const rows = await text(page, '#running-rows');
  assert.match(rows, /Runs on\s+NVIDIA GeForce RTX 4090 \(cuda:0\)/);
  assert.match(rows, /GPU\s+NVIDIA GeForce RTX 4090, 25\.8 GB/);
  assert.match(await text(page, '#update'), /Version 1\.3\.1 is downloaded and ready/);
  const variants = await page.locator('#variants li').evaluateAll((ls) => ls.map((l) => [l.dataset.variant, l.className, Boolean(l.querySelector('button'))]));
  assert.deepEqual(variants, [['linux-x86_64-cuda12.8', 'yes', false], ['linux-x86_64-cpu', 'yes', true], ['linux-x86_64-cuda13.0', 'no', false]]);
  assert.match(await text(page, '#variants'), /Does not fit[\s\S]*needs NVIDIA driver ≥ 580/);
  const installed = await text(page, '#installed-list');
  assert.match(installed, /1\.3\.0 · CUDA 12\.8 engine\s*In use[\s\S]*4\.4 GB/);
  assert.match(installed, /1\.3\.1[\s\S]*Ready after restart/);
  assert.match(installed, /1\.1\.0 · CPU engine[\s\S]*212 MB/);
  await shot(page, 'engine-page');
  await page.click('#update-actions button[data-action=restart]');
  await page.click('#variants button[data-variant=linux-x86_64-cpu]');
  await page.click('button#repair');
  await page.click('button#log');
  await page.click('button#gc');
  await page.waitForSelector('#gc-result:not([hidden])');
  assert.equal(await text(page, '#gc-result'), 'Removed 1 old version(s), 212 MB freed.');
  assert.deepEqual(bridge.acts, ['restart', ['switch', 'linux-x86_64-cpu'], 'repair', 'log']);
});

test('the self-test: polls the engine, shows the device, steps per second and the loss going down', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const engine = await standInEngine();
  t.after(() => engine.close());
  const page = await open(t, 'engine.html', LAYOUTS[0], { bridge: bridgeFor(engine) });
  await page.waitForSelector('body[data-state=shown]');
  await page.click('#selftest-run');
  await page.waitForSelector('body[data-selftest=done]', { timeout: 20000 });
  assert.equal(await text(page, '#selftest-title'), 'The engine can train on this computer');
  const lines = await text(page, '#selftest-lines');
  assert.match(lines, /Device\s+NVIDIA GeForce RTX 4090 \(cuda:0\)/);
  assert.match(lines, /Steps\s+8 of 8/);
  assert.match(lines, /Speed\s+39 steps per second/);
  assert.match(lines, /Loss\s+2\.400 → 0\.[0-9]{3}/);
  const pts = (await page.locator('#selftest-line').getAttribute('points')).split(' ').map((p) => p.split(',').map(Number));
  assert.equal(pts.length, 8);
  assert.ok(pts[7][1] > pts[0][1], 'the line ends lower than it starts (SVG y grows downwards)');
  assert.ok(engine.seen.filter((s) => s.startsWith('GET /self-test/st1')).length >= 4, engine.seen.join());
  assert.equal(await page.locator('#selftest-run').isDisabled(), false);
  await shot(page, 'engine-selftest');
  for (const layout of LAYOUTS.slice(1)) {
    await page.setViewportSize({ width: Math.round(layout.width / layout.zoom), height: Math.round(layout.height / layout.zoom) });
    await assertHolds(page, `self-test at ${layout.name}`);
  }
});

test('the self-test on an engine without PyTorch says it cannot train', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const engine = await standInEngine({ unavailable: true });
  t.after(() => engine.close());
  const page = await open(t, 'engine.html', LAYOUTS[0], { bridge: bridgeFor(engine) });
  await page.waitForSelector('body[data-state=shown]');
  await page.click('#selftest-run');
  await page.waitForSelector('body[data-selftest=unavailable]', { timeout: 20000 });
  assert.equal(await text(page, '#selftest-title'), 'This engine cannot train');
  assert.match(await text(page, '#selftest-message'), /built without PyTorch/);
  // a token the engine does not accept is a failure in words, not a hang
  const wrong = await enginectl.selfTestStart({ ...engine, token: 'nope' });
  assert.match(wrong.error, /HTTP 401/);
});

test('the Engine page holds at every zoom and at 360 px, also with nothing known yet', { timeout: 120000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const engine = await standInEngine();
  t.after(() => engine.close());
  for (const layout of LAYOUTS) {
    for (const [name, info] of [['full', INFO], ['empty', { mode: 'production', running: null, status: { error: 'x' }, detect: { error: 'offline', verdicts: [] } }]]) {
      const page = await open(t, 'engine.html', layout, { bridge: bridgeFor(engine, info) });
      await page.waitForSelector('body[data-state=shown]');
      await assertHolds(page, `engine page (${name}) at ${layout.name}`);
      if (name === 'full' && layout.name === '360px') await shot(page, 'engine-page-360px');
      if (name === 'full' && layout.name === '150') await shot(page, 'engine-page-150');
    }
  }
});

test('real errors from the real bootstrapper: the window names the problem by reason and shows no flag or variable', { timeout: 180000 }, async (t) => {
  if (!need(t, 'chromium', 'bootstrap', 'release', 'bundle')) return;
  const { tmp, Repo, serve, TOOLS } = require('./support');
  const { runBootstrap } = require('../lib/bootstrap');
  const root = tmp();
  const repo = new Repo(root).pack('1.0.0').publish();
  const other = new Repo(path.join(root, 'other'));
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const home = path.join(root, 'home');
  fs.mkdirSync(home);
  const base = { HOME: home, PATH: process.env.PATH, PEFT_CACHE_DIR: path.join(root, 'cache'), PEFT_TRUSTED_KEY: repo.pub, PEFT_LOCK_TIMEOUT: '5' };
  const cases = [
    ['unreachable', { ...base, PEFT_MANIFEST_URL: 'http://127.0.0.1:9/channels/stable/manifest.json' }, 3],
    ['not_found', { ...base, PEFT_MANIFEST_URL: `${srv.url}/moved/channels/stable/manifest.json` }, 3],
    ['untrusted_key', { ...base, PEFT_MANIFEST_URL: srv.manifest, PEFT_TRUSTED_KEY: other.pub }, 4],
    ['not_configured', { HOME: home, PATH: process.env.PATH, PEFT_CACHE_DIR: path.join(root, 'cache2') }, 2],
    ['unknown_variant', { ...base, PEFT_MANIFEST_URL: srv.manifest, PEFT_BACKEND_VARIANT: 'linux-x86_64-nonsense' }, null],
    ['not_a_bundle_folder', { ...base, PEFT_OFFLINE_DIR: path.join(root, 'home') }, null],
  ];
  const page = await open(t, 'progress.html');
  const seen = [];
  for (const [reason, env, exit] of cases) {
    const r = await runBootstrap(TOOLS.bootstrap, ['ensure', '--ui-version', '0.1.0'], { env }).done;
    assert.ok(r.error, `${reason}: an error event`);
    if (exit != null) assert.equal(r.error.exit_code, exit, `${reason}: ${JSON.stringify(r.error)}`);
    await page.evaluate(() => window.peftView.reset());
    const retries = r.events.filter((e) => e.event === 'retry');
    if (retries.length) {
      // each retry shows at once, in words, before the final error
      await feed(page, [...r.events.filter((e) => e.event === 'hardware'), { ...retries[0], t: 1 }]);
      assert.match(await text(page, '#notice-heading'), /^(Connection lost|The server can't find a file|The server had a problem|The download was interrupted) — trying again (in \d+ s|now) \(attempt \d+ of \d+\)$/, JSON.stringify(retries[0]));
      seen.push(`${reason}: ${retries.length} retry event(s), first shown as "${await text(page, '#notice-heading')}"`);
      await page.evaluate(() => window.peftView.reset());
    }
    await feed(page, [...r.events.filter((e) => e.event === 'hardware'), { ...r.error, t: 1 }]);
    const title = await text(page, '#title');
    assert.equal(title, D.errorAdvice(r.error).title, reason);
    // every error carries its reason, and the window words it by that reason
    assert.equal(r.error.reason, reason, JSON.stringify(r.error));
    assert.equal(title, D.errorAdvice({ reason }).title, reason);
    const all = await page.locator('body').innerText();
    assert.doesNotMatch(all, /(^|\s)--[a-z]/m, `${reason}: a flag in the window: ${all}`);
    assert.doesNotMatch(all, /PEFT_/, `${reason}: a variable in the window: ${all}`);
    await assertHolds(page, reason);
    seen.push(`${reason}: exit ${r.error.exit_code}, reason ${r.error.reason || '(none)'} -> "${title}"`);
  }
  t.diagnostic(seen.join('\n'));
});
