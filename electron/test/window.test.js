'use strict';
// The progress window (ui/progress.html) in Debian's Chromium, driven by playwright-core
// and fed recorded event streams (test/fixtures/streams/). Screenshots go to
// PEFT_SCREENSHOT_DIR (default target/screenshots/); docs/images/ holds chosen ones.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { need, CHROMIUM } = require('./support');
const paths = require('../lib/paths');

const PAGE = `file://${path.join(paths.ELECTRON_DIR, 'ui', 'progress.html')}`;
const STREAMS = path.join(__dirname, 'fixtures', 'streams');
const SHOTS = process.env.PEFT_SCREENSHOT_DIR || path.join(paths.REPO_DIR, 'target', 'screenshots');

const stream = (name) => fs.readFileSync(path.join(STREAMS, `${name}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

let browser;
async function openPage(t) {
  if (!browser) {
    const { chromium } = require('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'] });
  }
  const page = await browser.newPage({ viewport: { width: 720, height: 640 }, deviceScaleFactor: 1 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(PAGE);
  t.after(async () => { assert.deepEqual(errors, [], 'no script errors in the page'); await page.close(); });
  return page;
}
test.after(async () => { if (browser) await browser.close(); });

const feed = (page, events) => page.evaluate((evs) => { for (const e of evs) window.peftView.feed(e, e.t); }, events);
const tick = (page, now) => page.evaluate((n) => window.peftView.tick(n), now);
const text = (page, sel) => page.locator(sel).innerText();
const actions = (page) => page.locator('#actions button').evaluateAll((bs) => bs.map((b) => b.dataset.action));
const bar = (page) => page.locator('#bar').getAttribute('aria-valuenow');
async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), animations: 'disabled' });
}

test('fresh CUDA install: engine in words, bar with bytes, speed and time left, steps, then ready and the update notice', { timeout: 60000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await openPage(t);
  const evs = stream('cuda-fresh');
  assert.equal(await page.locator('body').getAttribute('data-state'), 'checking');

  await feed(page, evs.slice(0, 1));
  assert.match(await text(page, '#engine'), /Looking at this computer/);

  // a third of the download
  const third = evs.findIndex((e) => e.event === 'progress' && e.done >= 630_000_000);
  await feed(page, evs.slice(1, third + 1));
  assert.equal(await text(page, '#title'), 'Downloading the CUDA 12.8 engine');
  assert.equal(await text(page, '#engine'), 'The CUDA 12.8 engine for your NVIDIA GeForce RTX 4090');
  const nums = await text(page, '#numbers');
  assert.match(nums, /^648 MB of 1\.9 GB · 48 MB\/s · 2\d s left$/, nums);
  assert.equal(await bar(page), '34.1');
  assert.deepEqual(await actions(page), ['cancel']);
  assert.deepEqual(await page.locator('#steps li').evaluateAll((ls) => ls.map((l) => l.className)), ['done', 'current', '', '', '']);
  await shot(page, 'progress-downloading');

  // unpacking
  const unpack = evs.findIndex((e) => e.event === 'progress' && e.phase === 'extract' && e.done >= 2_000_000_000);
  await feed(page, evs.slice(third + 1, unpack + 1));
  assert.equal(await text(page, '#title'), 'Unpacking the CUDA 12.8 engine');
  assert.match(await text(page, '#numbers'), /^2\.1 GB of 4\.3 GB$/);
  assert.equal(await bar(page), '50');
  assert.deepEqual(await page.locator('#steps li').evaluateAll((ls) => ls.map((l) => l.className)), ['done', 'done', 'done', 'current', '']);

  // starting
  const starting = evs.findIndex((e) => e.event === 'engine' && e.state === 'starting');
  await feed(page, evs.slice(unpack + 1, starting + 1));
  assert.equal(await text(page, '#title'), 'Starting the engine…');
  assert.equal(await text(page, '#numbers'), 'Installed and verified.');
  assert.equal(await bar(page), null, 'indeterminate while the engine boots');
  assert.deepEqual(await actions(page), []);

  // running, then an update is staged in the background
  const running = evs.findIndex((e) => e.event === 'engine' && e.state === 'running');
  await feed(page, evs.slice(starting + 1, running + 1));
  assert.equal(await text(page, '#title'), 'PEFT Studio is ready');
  assert.match(await text(page, '#engine'), /CUDA 12\.8 engine for your NVIDIA GeForce RTX 4090 is running \(1\.3\.0\)/);
  assert.equal(await bar(page), '100');
  assert.equal(await page.locator('#notice').isVisible(), false);
  await feed(page, evs.slice(running + 1));
  assert.match(await text(page, '#notice'), /A new engine is ready[\s\S]*1\.3\.1[\s\S]*Restart to use it/);
  assert.deepEqual(await actions(page), ['restart', 'engine']);
  await shot(page, 'progress-update-ready');
  await page.click('button[data-action=restart]');
  assert.deepEqual(await page.evaluate(() => window.peftActions), ['restart']);
});

test('cache hit: no download, straight to starting and ready', { timeout: 30000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await openPage(t);
  const evs = stream('cpu-cache');
  await feed(page, evs.slice(0, 2));
  assert.equal(await text(page, '#title'), 'Starting the engine…');
  assert.equal(await text(page, '#numbers'), 'Already installed: nothing to download.');
  assert.equal(await text(page, '#engine'), "The CPU engine for this computer's processor");
  await feed(page, evs.slice(2, 3));
  assert.equal(await text(page, '#title'), 'PEFT Studio is ready');
  assert.deepEqual(await page.locator('#steps li').evaluateAll((ls) => ls.map((l) => l.className)), ['done', 'done', 'done', 'done', 'done']);
});

test('a real CPU install stream, recorded from headless.js', { timeout: 30000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await openPage(t);
  const evs = stream('cpu-fresh');
  const firstDl = evs.findIndex((e) => e.event === 'progress');
  await feed(page, evs.slice(0, firstDl + 1));
  assert.equal(await text(page, '#title'), 'Downloading the CPU engine');
  assert.match(await text(page, '#numbers'), / of 24\.1 MB$/);
  await feed(page, evs.slice(0, evs.findIndex((e) => e.event === 'engine' && e.state === 'running') + 1));
  assert.equal(await text(page, '#title'), 'PEFT Studio is ready');
  // the recording ends with the engine stopping at quit: the window does not claim it runs
  await feed(page, evs.slice(-1));
  assert.equal(await text(page, '#title'), 'The engine stopped');
});

const EXPECT = {
  1: ['Something went wrong inside PEFT Studio', ['retry', 'cpu', 'log'], /please report this bug/],
  2: ['A setting is not right', ['retry', 'log'], /is not a channel name/],
  3: ["Can't reach the download server", ['retry', 'folder', 'log'], /Connection refused/],
  4: ["The download didn't pass its safety check", ['retry', 'folder', 'log'], /not trusted/],
  5: ['No engine fits this computer yet', ['cpu', 'folder', 'log'], /needs NVIDIA driver ≥ 550/],
  6: ["PEFT Studio can't store its engine", ['location', 'retry', 'log'], /free 4\.2 GB on the disk/],
  7: ['Another PEFT Studio is installing the engine', ['retry'], /wait for the other instance/],
};
for (const [code, [title, acts, detail]] of Object.entries(EXPECT)) {
  test(`exit code ${code}: "${title}" with its actions`, { timeout: 30000 }, async (t) => {
    if (!need(t, 'chromium')) return;
    const page = await openPage(t);
    await feed(page, stream(`error-${code}`));
    assert.equal(await text(page, '#title'), title);
    assert.deepEqual(await actions(page), acts);
    assert.match(await text(page, '#notice-detail'), detail);
    assert.equal(await page.locator('body').getAttribute('data-state'), 'error');
    assert.equal(await page.locator('#actions button.primary').count(), 1, 'one primary action');
    if (code === '5') assert.equal(await text(page, '#engine'), 'This computer: NVIDIA GeForce RTX 4090, driver 535.104.05');
    if (code === '6') assert.equal(await text(page, '#engine'), 'For the CUDA 12.8 engine for your NVIDIA GeForce RTX 4090');
    await shot(page, `progress-error-${code}`);
    await page.click(`button[data-action=${acts[0]}]`);
    assert.deepEqual(await page.evaluate(() => window.peftActions), [acts[0]]);
    assert.equal(await page.locator('body').getAttribute('data-state'), 'checking', 'a retry starts over');
  });
}

test('stall: 60 s without progress says so and offers the actions; progress clears it', { timeout: 30000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await openPage(t);
  const evs = stream('cuda-stall');
  await feed(page, evs);
  const last = evs[evs.length - 1].t;
  await tick(page, last + 59_000);
  assert.equal(await page.locator('#notice').isVisible(), false, 'not before 60 s');
  await tick(page, last + 60_000);
  assert.equal(await page.locator('body').getAttribute('data-state'), 'stalled');
  assert.match(await text(page, '#notice'), /No progress for a minute/);
  assert.deepEqual(await actions(page), ['wait', 'retry', 'folder', 'log', 'cancel']);
  assert.equal(await text(page, '#numbers'), '696 MB of 1.9 GB', 'no stale speed or time left while stalled');
  await shot(page, 'progress-stalled');
  // the download moves again: the notice goes
  await feed(page, [{ event: 'progress', phase: 'download', done: 724_000_000, total: 1_900_000_000, t: last + 61_000 }]);
  assert.equal(await page.locator('#notice').isVisible(), false);
  assert.deepEqual(await actions(page), ['cancel']);
});

test('cancel and the folder action reach the launcher; the window says the download is kept', { timeout: 30000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await openPage(t);
  const evs = stream('cuda-fresh');
  await feed(page, evs.slice(0, 20));
  await page.click('button[data-action=cancel]');
  assert.equal(await text(page, '#title'), 'Installation paused');
  assert.match(await text(page, '#notice'), /already downloaded is kept/);
  assert.deepEqual(await actions(page), ['retry', 'folder']);
  await page.click('button[data-action=folder]');
  assert.deepEqual(await page.evaluate(() => window.peftActions), ['cancel', 'folder']);
});

test('engine failure after install: actions include the CPU engine', { timeout: 30000 }, async (t) => {
  if (!need(t, 'chromium')) return;
  const page = await openPage(t);
  const evs = stream('cuda-fresh');
  const starting = evs.findIndex((e) => e.event === 'engine');
  await feed(page, evs.slice(0, starting + 1));
  await feed(page, [{ event: 'engine', state: 'failed', message: 'the engine exited before it listened (status 1) (engine log: /home/ada/.config/PEFT Studio/logs/engine.log)', t: 99999 }]);
  assert.equal(await text(page, '#title'), 'The engine could not start');
  assert.deepEqual(await actions(page), ['repair', 'retry', 'cpu', 'log']);
  assert.match(await text(page, '#notice-detail'), /engine\.log/);
  await shot(page, 'progress-engine-failed');
});
