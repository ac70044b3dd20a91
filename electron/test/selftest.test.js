'use strict';
// The self-test through the app's own path on an engine that has PyTorch: the launcher
// starts the engine from source (development mode) with a Python that has torch,
// lib/enginectl.js runs POST /self-test and polls GET /self-test/<id>, and the Engine
// page (in Chromium) shows the device, steps per second and the loss going down.
// Needs a Python with torch, transformers and peft: PEFT_TORCH_PYTHON, else the venvs
// `backend/run-tests --full` (target/venvs/dev-full) or `backend/build-bundle --profile
// full` (target/venvs/full-cpu) make. Skipped, saying so, without one (the core CI run
// has none; the core engine's `unavailable` answer is tested in repair.test.js).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { tmp, CHROMIUM } = require('./support');
const { Launcher } = require('../lib/launcher');
const enginectl = require('../lib/enginectl');
const E = require('../ui/engineinfo.js');
const paths = require('../lib/paths');

function torchPython() {
  const candidates = [process.env.PEFT_TORCH_PYTHON,
    ...['dev-full', 'full-cpu'].map((v) => path.join(paths.REPO_DIR, 'target', 'venvs', v, 'bin', 'python'))].filter(Boolean);
  for (const py of candidates) {
    if (!paths.isExecutable(py)) continue;
    if (spawnSync(py, ['-c', 'import torch, transformers, peft'], { timeout: 120000 }).status === 0) return py;
  }
  return null;
}

test('the self-test on an engine with PyTorch: it trains, the loss goes down, the Engine page shows it', { timeout: 300000 }, async (t) => {
  const py = torchPython();
  if (!py) {
    const why = 'no Python with torch, transformers and peft (set PEFT_TORCH_PYTHON, or run backend/run-tests --full)';
    t.skip(why);
    process.stderr.write(`skipped: ${why}\n`);
    return;
  }
  const root = tmp();
  const env = { ...process.env, PEFT_DEV_PYTHON: py, PEFT_DATA_DIR: path.join(root, 'data') };
  const launcher = new Launcher({ mode: 'dev', env, appDir: path.join(root, 'app'), bootTimeoutMs: 120000 });
  t.after(() => launcher.stop());
  const engine = await launcher.start();
  assert.ok(engine && engine.running, 'the engine from source runs');
  const updates = [];
  const st = await enginectl.selfTest(engine, { steps: 8, timeoutMs: 240000, onUpdate: (s) => updates.push(s) });
  assert.equal(st.state, 'done', JSON.stringify(st));
  assert.equal(st.steps_done, 8);
  assert.ok(st.steps_per_second > 0);
  assert.ok(st.losses.length === 8 && st.losses[7] < st.losses[0], `the loss goes down: ${st.losses}`);
  assert.ok(updates.some((u) => u.state === 'running'), 'polled while running');
  const view = E.selfTestView(st);
  assert.equal(view.title, 'The engine can train on this computer');
  t.diagnostic(`self-test on ${st.device}: ${st.steps_per_second.toFixed(2)} steps/s, loss ${st.losses[0].toFixed(3)} -> ${st.losses[7].toFixed(3)}`);

  // the Engine page in Chromium, its bridge answered by enginectl against this engine
  if (!paths.isExecutable(CHROMIUM)) { t.diagnostic(`no ${CHROMIUM}: the page part is skipped`); return; }
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 720, height: 640 } });
  await page.exposeFunction('peftTestAsk', async (name, arg) => {
    if (name === 'engine-info') return enginectl.info(launcher);
    if (name === 'selftest-start') return enginectl.selfTestStart(engine, arg);
    if (name === 'selftest-poll') return enginectl.selfTestPoll(engine, arg);
    throw new Error(name);
  });
  await page.addInitScript(() => { window.peft = { ask: (n, a) => window.peftTestAsk(n, a), act: () => {}, onEvent: () => {} }; });
  await page.goto(`file://${path.join(paths.ELECTRON_DIR, 'ui', 'engine.html')}`);
  await page.waitForSelector('body[data-state=shown]');
  await page.click('#selftest-run');
  await page.waitForSelector('body[data-selftest=done]', { timeout: 240000 });
  assert.equal(await page.locator('#selftest-title').innerText(), 'The engine can train on this computer');
  assert.match(await page.locator('#selftest-lines').innerText(), /Device\s+\S+[\s\S]*Steps\s+8 of 8[\s\S]*Speed[\s\S]*Loss/);
  const dir = process.env.PEFT_SCREENSHOT_DIR || path.join(paths.REPO_DIR, 'target', 'screenshots');
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, 'engine-selftest-real.png'), fullPage: true });
});
