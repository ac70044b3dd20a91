'use strict';
// The app's own updates: release.json, the feed URL, ui_compat ranges as the
// bootstrapper reads them, the decision, and the whole check against a real signed
// repository with the real bootstrapper staging the engine a new UI needs.
// electron-updater itself needs Electron; a stand-in with its two methods
// (checkForUpdates, downloadUpdate) records what the decision let through.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const u = require('../lib/app-update');
const { runBootstrap } = require('../lib/bootstrap');
const paths = require('../lib/paths');
const { TOOLS, VARIANT, need, tmp, Repo, serve } = require('./support');

test('ui_compat ranges read as the semver crate reads them (the bootstrapper\'s ui_compat)', () => {
  const cases = [
    ['>=1.2.0, <2.0.0', '1.2.0', true], ['>=1.2.0, <2.0.0', '1.99.3', true], ['>=1.2.0, <2.0.0', '2.0.0', false],
    ['>=1.2.0, <2.0.0', '1.1.9', false], ['^1.4', '1.9.9', true], ['^1.4', '1.3.9', false], ['^1.4', '2.0.0', false],
    ['^0.2.3', '0.2.9', true], ['^0.2.3', '0.3.0', false], ['^0.0.3', '0.0.4', false], ['~1.2.3', '1.2.9', true],
    ['~1.2.3', '1.3.0', false], ['~1', '1.9.0', true], ['1.*', '1.7.0', true], ['1.*', '2.0.0', false], ['*', '0.1.0', true],
    ['=1.2', '1.2.7', true], ['=1.2', '1.3.0', false], ['>1.2', '1.2.9', false], ['>1.2', '1.3.0', true],
    ['<=1.2', '1.2.9', true], ['<=1.2', '1.3.0', false], ['1.2.3', '1.9.0', true], ['1.2.3', '2.0.0', false],
    // pre-releases only when a comparator names one of the same MAJOR.MINOR.PATCH
    ['>=1', '2.0.0-beta.1', false], ['>=2.0.0-beta.1', '2.0.0-beta.2', true], ['>=2.0.0-beta.1', '2.0.1-beta.1', false],
    ['>=2.0.0-beta.2', '2.0.0-beta.10', true], ['>=2.0.0-beta.2', '2.0.0-alpha.9', false],
  ];
  for (const [range, v, want] of cases) assert.equal(u.admits(range, v), want, `${range} admits ${v}`);
  assert.throws(() => u.admits('>=banana', '1.0.0'), /not a version range/);
  assert.equal(u.compareVersions('1.10.0', '1.9.0'), 1);
  assert.equal(u.compareVersions('1.0.0-rc.1', '1.0.0'), -1);
});

test('release.json is checked and a bad one names the file and the problem', () => {
  const dir = tmp();
  const f = path.join(dir, 'release.json');
  const key = 'RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3';
  fs.writeFileSync(f, JSON.stringify({ manifest_url: 'https://h.example/p/channels/stable/manifest.json', trusted_keys: [key], future_key: 1 }));
  assert.equal(u.readReleaseConfig(f).trusted_keys[0], key, 'unknown keys are ignored');
  const bad = [
    ['{"manifest_url": ', /release\.json: is not valid JSON/],
    ['[]', /must hold a JSON object/],
    ['{}', /manifest_url must be an http\(s\):\/\/ or file:\/\/ URL \(got undefined\)/],
    ['{"manifest_url": "https://h/m.json", "trusted_keys": ["not a key"]}', /each of trusted_keys must be a minisign public key line .*"not a key"/],
    ['{"manifest_url": "https://h/m.json", "mirrors": "https://m"}', /mirrors must be a list/],
    ['{"manifest_url": "https://h/m.json", "channel": "a b"}', /channel must be a name/],
  ];
  for (const [text, re] of bad) {
    fs.writeFileSync(f, text);
    assert.throws(() => u.readReleaseConfig(f), (err) => err.code === 'ERELEASECONFIG' && err.message.startsWith(f) && re.test(err.message), text);
  }
  assert.throws(() => u.readReleaseConfig(path.join(dir, 'missing.json')), /missing\.json: cannot be read \(ENOENT\)/);
});

test('the app feed sits beside the engine channel on the same host', () => {
  assert.equal(u.appFeedUrl({ manifest_url: 'https://h.example/peft/channels/beta/manifest.json' }), 'https://h.example/peft/app/beta/');
  assert.equal(u.appFeedUrl({ manifest_url: 'https://h.example/peft/', channel: 'nightly' }), 'https://h.example/peft/app/nightly/');
  assert.equal(u.appFeedUrl({ manifest_url: 'https://h.example/peft' }), 'https://h.example/peft/app/stable/');
  assert.equal(u.appFeedUrl({ manifest_url: 'https://h/x', app_update_url: 'https://cdn.example/app' }), 'https://cdn.example/app/');
  assert.equal(u.appFeedUrl({ manifest_url: 'file:///media/stick/peft-backend-bundles' }), null, 'an offline lab folder has no app feed');
});

test('the decision: install, fetch the engine first, refuse, or nothing', () => {
  const releases = [
    { version: '2.0.0', ui_compat: '>=1.1.0, <2.0.0', variants: [{ id: 'linux-x86_64-cuda12.8' }] },
    { version: '1.5.0', ui_compat: '>=1.0.0, <1.2.0', variants: [{ id: 'linux-x86_64-cpu' }, { id: 'linux-x86_64-cuda12.8' }] },
    { version: '1.4.0', ui_compat: '>=1.0.0, <1.1.0', variants: [{ id: 'linux-x86_64-cpu' }] },
  ];
  const d = (offered, engine, variant) => u.decide({ current: '1.0.0', offered: { version: offered }, releases, engine, variant });
  assert.deepEqual(d('1.0.0', '1.4.0'), { action: 'none', version: '1.0.0' });
  assert.deepEqual(d('0.9.0', '1.4.0'), { action: 'none', version: '0.9.0' }, 'never a downgrade');
  assert.deepEqual(d('1.1.0', '1.5.0'), { action: 'install', version: '1.1.0', engine: '1.5.0' }, 'the running engine serves it');
  assert.deepEqual(d('1.1.0', '1.4.0'), { action: 'engine_first', version: '1.1.0', engine: '2.0.0' }, 'the newest engine serving it');
  assert.deepEqual(d('1.1.0', '1.4.0', 'linux-x86_64-cpu'), { action: 'engine_first', version: '1.1.0', engine: '1.5.0' }, 'only releases with this machine\'s variant');
  const refused = d('1.2.0', '1.5.0', 'linux-x86_64-cpu');
  assert.equal(refused.action, 'refuse');
  assert.equal(refused.message, 'PEFT Studio 1.2.0 is available, but no published engine serves it yet for this computer (linux-x86_64-cpu); keeping 1.0.0 until one is published.');
  assert.equal(d('2.0.0', '2.0.0').action, 'refuse', 'no release admits 2.x');
  assert.equal(u.decide({ current: '1.0.0', offered: { version: '1.1.0' }, releases: [{ version: '9.0.0', ui_compat: 'garbage' }] }).action, 'refuse',
    'a range nobody can read serves nobody');
  assert.equal(d('1.1.0', null).action, 'engine_first', 'no engine installed yet');
});

/** A stand-in for electron-updater's autoUpdater: the offer, and a record of downloads. */
function updaterOffering(version) {
  return { downloads: 0, async checkForUpdates() { return { updateInfo: { version, files: [] } }; }, async downloadUpdate() { this.downloads++; } };
}

async function serveJson(obj) {
  const server = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(obj)); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/channels/stable/manifest.json`, close: () => new Promise((r) => server.close(r)) };
}

test('a check never downloads a UI that no engine serves, and stages the engine first when one must come first', async (t) => {
  const srv = await serveJson({ releases: [{ version: '1.5.0', ui_compat: '>=1.0.0, <1.2.0' }, { version: '2.0.0', ui_compat: '>=1.1.0, <1.3.0' }] });
  t.after(() => srv.close());
  const run = async (offered, engine, stageResult = { ok: true }) => {
    const updater = updaterOffering(offered);
    const staged = [];
    const a = new u.AppUpdater({ updater, current: '1.0.0', engine: () => ({ version: engine }), fetchReleases: () => u.fetchReleases(srv.url),
      stageEngine: async (v) => { staged.push(v); return stageResult; } });
    const events = [];
    a.on('event', (e) => events.push(e));
    const last = await a.check();
    return { updater, staged, events, last };
  };
  let r = await run('1.1.0', '1.5.0');
  assert.deepEqual([r.events.map((e) => e.state), r.staged, r.updater.downloads], [['checking', 'downloading', 'downloaded'], [], 1]);
  r = await run('1.2.0', '1.5.0');
  assert.deepEqual([r.events.map((e) => e.state), r.staged, r.updater.downloads], [['checking', 'engine', 'downloading', 'downloaded'], ['1.2.0'], 1]);
  assert.equal(r.events[1].engine, '2.0.0');
  r = await run('1.3.0', '2.0.0');
  assert.deepEqual([r.last.state, r.updater.downloads], ['refused', 0]);
  assert.match(r.last.message, /no published engine serves it yet/);
  r = await run('1.2.0', '1.5.0', { ok: false, message: 'the download server could not be reached' });
  assert.deepEqual([r.last.state, r.updater.downloads], ['refused', 0], 'the engine could not come first: keep this UI');
  assert.match(r.last.message, /needs engine 2\.0\.0, which could not be fetched first \(the download server could not be reached\)/);
  r = await run('1.0.0', '1.5.0');
  assert.equal(r.last.state, 'up_to_date');
  const broken = new u.AppUpdater({ updater: { checkForUpdates: async () => { throw new Error('HTTP 404 latest.yml'); } }, current: '1.0.0',
    fetchReleases: async () => [], stageEngine: async () => ({ ok: true }) });
  assert.deepEqual(await broken.check(), { event: 'app_update', state: 'failed', message: 'HTTP 404 latest.yml' });
});

test('the engine a new UI needs is staged by the real bootstrapper from a signed repository before the UI is downloaded', { timeout: 240000 }, async (t) => {
  if (!need(t, 'bootstrap', 'release', 'bundle')) return;
  const root = tmp();
  const repo = new Repo(root);
  const pack = (version, compat) => execFileSync(TOOLS.release, ['pack', '--repo', repo.dir, '--input', TOOLS.bundle, '--version', version,
    '--variant', VARIANT, '--entry', `peft_engine/peft_engine${paths.EXE}`, '--ui-compat', compat, '--deltas', '0', '--zstd-level', '3'], { stdio: 'ignore' });
  pack('1.0.0', '>=0.1.0, <0.2.0');
  repo.publish();
  const srv = await serve(repo.dir);
  t.after(() => srv.close());
  const env = { ...process.env, PEFT_MANIFEST_URL: srv.manifest, PEFT_TRUSTED_KEY: repo.pub, PEFT_CACHE_DIR: path.join(root, 'cache'), PEFT_LOCK_TIMEOUT: '20' };
  const first = await runBootstrap(TOOLS.bootstrap, ['ensure', '--ui-version', '0.1.0'], { env }).done;
  assert.equal(first.code, 0, JSON.stringify(first.events.slice(-2)));
  pack('2.0.0', '>=0.1.0, <0.3.0');
  repo.publish();

  const check = async (offered) => {
    const updater = updaterOffering(offered);
    const a = new u.AppUpdater({ updater, current: '0.1.0', engine: () => ({ version: '1.0.0', variant: VARIANT }),
      fetchReleases: () => u.fetchReleases(srv.manifest),
      stageEngine: (v) => u.stageEngine({ bin: TOOLS.bootstrap, uiVersion: v, env }) });
    const events = [];
    a.on('event', (e) => events.push(e));
    await a.check();
    return { events, downloads: updater.downloads };
  };
  const ok = await check('0.2.0');
  assert.deepEqual(ok.events.map((e) => e.state), ['checking', 'engine', 'downloading', 'downloaded'], JSON.stringify(ok.events));
  assert.equal(ok.downloads, 1);
  const status = await runBootstrap(TOOLS.bootstrap, ['status'], { env }).done;
  const st = status.events.find((e) => e.event === 'status');
  assert.ok(JSON.stringify(st).includes('2.0.0'), `engine 2.0.0 is staged or installed: ${JSON.stringify(st)}`);
  const hits = srv.hits.length;
  const no = await check('0.3.0');
  assert.deepEqual([no.events.at(-1).state, no.downloads], ['refused', 0]);
  assert.equal(srv.hits.length, hits + 1, 'only the manifest was read: no engine fetched for a UI nothing serves');
});
