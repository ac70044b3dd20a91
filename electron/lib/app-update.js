'use strict';
// The app's own updates (electron-updater, generic provider) and the one rule they
// obey: never install a UI that no published engine serves.
//
// Pure parts (tested under plain Node):
//   readReleaseConfig(file)   release.json (docs/CONTRACT.md §4.6), checked; names the file on error
//   appFeedUrl(config)        where latest.yml & co. live: `app_update_url`, else
//                             <repository root>/app/<channel>/ beside channels/<channel>/manifest.json
//   admits(range, version)    Rust `semver::VersionReq` semantics, as the bootstrapper's ui_compat
//   decide({...})             install | engine_first | refuse | none
// Orchestration (AppUpdater) takes the updater, the manifest fetch and the engine
// stage as functions, so main.js only wires electron-updater and the launcher to it.

const fs = require('node:fs');
const release = require('./release');
const { EventEmitter } = require('node:events');

// ---------- release.json ----------

function configError(file, problem) {
  const err = new Error(`${file}: ${problem}`);
  err.code = 'ERELEASECONFIG';
  return err;
}

function isUrl(s, schemes) {
  try { return schemes.includes(new URL(s).protocol); } catch { return false; }
}

// A minisign public key line: base64 of 2 bytes "Ed" + 8-byte key id + 32-byte key.
const KEY_LINE = /^RW[A-Za-z0-9+/]{54}$/;

/** Read and check release.json; throws an error (code ERELEASECONFIG) naming the file and the problem. */
function readReleaseConfig(file) {
  const r = release.readFile(file);
  const cause = r.cause || (r.config ? null : { kind: 'read', code: 'ENOENT' });
  if (cause && cause.kind === 'read') {
    throw configError(file, `cannot be read (${cause.code}): create it (docs/RELEASING.md, "release.json") or set PEFT_RELEASE_JSON`);
  }
  if (cause && cause.kind === 'json') throw configError(file, `is not valid JSON (${cause.detail})`);
  if (cause) throw configError(file, 'must hold a JSON object');
  const c = r.config;
  if (typeof c.manifest_url !== 'string' || !isUrl(c.manifest_url, ['http:', 'https:', 'file:'])) {
    throw configError(file, `manifest_url must be an http(s):// or file:// URL (got ${JSON.stringify(c.manifest_url)})`);
  }
  if (c.channel !== undefined && (typeof c.channel !== 'string' || !/^[A-Za-z0-9._-]+$/.test(c.channel))) {
    throw configError(file, `channel must be a name like "stable" (got ${JSON.stringify(c.channel)})`);
  }
  for (const [key, ok, what] of [
    ['mirrors', (m) => typeof m === 'string' && isUrl(m, ['http:', 'https:']), 'an http(s):// URL'],
    ['trusted_keys', (k) => typeof k === 'string' && KEY_LINE.test(k.trim()), 'a minisign public key line (RW... from a .pub file)'],
  ]) {
    if (c[key] === undefined) continue;
    if (!Array.isArray(c[key])) throw configError(file, `${key} must be a list`);
    const bad = c[key].find((v) => !ok(v));
    if (bad !== undefined) throw configError(file, `each of ${key} must be ${what} (got ${JSON.stringify(bad)})`);
  }
  if (c.app_update_url !== undefined && (typeof c.app_update_url !== 'string' || !isUrl(c.app_update_url, ['http:', 'https:']))) {
    throw configError(file, `app_update_url must be an http(s):// URL (got ${JSON.stringify(c.app_update_url)})`);
  }
  return c;
}

/**
 * The generic-provider feed of the app's own updates, on the same static host as the
 * engine: `app_update_url` when set; else, for .../channels/<ch>/manifest.json, the
 * folder .../app/<ch>/; for a repository root URL, <root>/app/<channel or stable>/.
 * null for file:// repositories (an offline lab has no app feed).
 */
function appFeedUrl(config) {
  if (config.app_update_url) return config.app_update_url.endsWith('/') ? config.app_update_url : `${config.app_update_url}/`;
  let u;
  try { u = new URL(config.manifest_url); } catch { return null; }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  const m = /^(.*)\/channels\/([^/]+)\/manifest\.json$/.exec(u.pathname);
  if (m) u.pathname = `${m[1]}/app/${m[2]}/`;
  else u.pathname = `${u.pathname.replace(/\/$/, '')}/app/${config.channel || 'stable'}/`;
  u.search = '';
  u.hash = '';
  return u.toString();
}

// ---------- versions and ranges (semver crate semantics) ----------

const VERSION = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

function parseVersion(s) {
  const m = VERSION.exec(String(s).trim());
  if (!m) throw new Error(`not a version: ${JSON.stringify(s)} (expected MAJOR.MINOR.PATCH)`);
  return { major: +m[1], minor: +m[2], patch: +m[3], pre: m[4] ? m[4].split('.') : [] };
}

function comparePre(a, b) {
  if (!a.length || !b.length) return (b.length ? 1 : 0) - (a.length ? 1 : 0); // a release is above its pre-releases
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] === undefined) return -1;
    if (b[i] === undefined) return 1;
    const na = /^\d+$/.test(a[i]);
    const nb = /^\d+$/.test(b[i]);
    if (na && nb) { if (+a[i] !== +b[i]) return +a[i] < +b[i] ? -1 : 1; } else if (na !== nb) return na ? -1 : 1;
    else if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

function compareVersions(a, b) {
  const x = typeof a === 'string' ? parseVersion(a) : a;
  const y = typeof b === 'string' ? parseVersion(b) : b;
  for (const k of ['major', 'minor', 'patch']) if (x[k] !== y[k]) return x[k] < y[k] ? -1 : 1;
  return comparePre(x.pre, y.pre);
}

const COMPARATOR = /^(=|>=|<=|>|<|~|\^)?\s*v?(\d+|\*|x|X)(?:\.(\d+|\*|x|X))?(?:\.(\d+|\*|x|X))?(?:-([0-9A-Za-z.-]+))?$/;

/** One comparator as a test function, the way semver::Comparator::matches reads it. */
function comparator(text) {
  const m = COMPARATOR.exec(text.trim());
  if (!m) throw new Error(`not a version range: ${JSON.stringify(text)}`);
  const wild = (v) => v === undefined || v === '*' || v === 'x' || v === 'X';
  let op = m[1] || '^';
  const major = wild(m[2]) ? null : +m[2];
  const minor = major === null || wild(m[3]) ? null : +m[3];
  const patch = minor === null || wild(m[4]) ? null : +m[4];
  const pre = m[5] ? m[5].split('.') : [];
  if (major === null) return { pre, test: () => true };
  if (!m[1] && (wild(m[3]) && m[3] !== undefined || wild(m[4]) && m[4] !== undefined)) op = '='; // 1.* / 1.2.x
  const v = (a, b, c, p = []) => ({ major: a, minor: b, patch: c, pre: p });
  const cmp = (x, y) => compareVersions(x, y);
  const lo = v(major, minor ?? 0, patch ?? 0, pre);
  const nextMajor = v(major + 1, 0, 0, ['0']);
  const nextMinor = minor === null ? nextMajor : v(major, minor + 1, 0, ['0']);
  const upperExact = patch !== null ? null : nextMinor; // `=1.2` is 1.2.*
  let test;
  switch (op) {
    case '=': test = (x) => (patch !== null ? cmp(x, lo) === 0 : cmp(x, lo) >= 0 && cmp(x, upperExact) < 0); break;
    case '>': test = (x) => (patch !== null ? cmp(x, lo) > 0 : cmp(x, nextMinor) >= 0); break;
    case '>=': test = (x) => cmp(x, lo) >= 0; break;
    case '<': test = (x) => cmp(x, lo) < 0; break;
    case '<=': test = (x) => (patch !== null ? cmp(x, lo) <= 0 : cmp(x, nextMinor) < 0); break;
    case '~': test = (x) => cmp(x, lo) >= 0 && cmp(x, minor === null ? nextMajor : v(major, minor + 1, 0, ['0'])) < 0; break;
    default: { // caret
      let upper;
      if (major > 0 || minor === null) upper = nextMajor;
      else if (minor > 0 || patch === null) upper = v(0, minor + 1, 0, ['0']);
      else upper = v(0, 0, patch + 1, ['0']);
      test = (x) => cmp(x, lo) >= 0 && cmp(x, upper) < 0;
    }
  }
  return { pre, major, minor, patch, test };
}

/**
 * Does the range (`>=1.2.0, <2.0.0`, `^1.4`, `~1.2.3`, `1.*`, `*`) admit the version?
 * As the semver crate: comparators are separated by commas and all must hold; a
 * pre-release version is admitted only by a comparator naming a pre-release of the
 * same MAJOR.MINOR.PATCH.
 */
function admits(range, version) {
  const x = typeof version === 'string' ? parseVersion(version) : version;
  const parts = String(range).split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new Error(`empty version range ${JSON.stringify(range)}`);
  const cs = parts.map(comparator);
  if (!cs.every((c) => c.test(x))) return false;
  if (x.pre.length === 0) return true;
  return cs.some((c) => c.pre.length && c.major === x.major && c.minor === x.minor && c.patch === x.patch);
}

// ---------- the decision ----------

/**
 * Decide what to do with an offered UI update.
 *   current:  this app's version
 *   offered:  { version } (electron-updater's updateInfo)
 *   releases: the engine manifest's releases, [{ version, ui_compat, variants? }]
 *   engine:   the engine version this machine runs now (null when none)
 *   variant:  the variant id this machine runs (optional: only releases offering it count)
 * Returns { action, ... }:
 *   none          the offer is not newer than this app
 *   install       the engine this machine runs already serves the new UI
 *   engine_first  { engine }: stage that engine (peft-bootstrap update --ui-version NEW), then install
 *   refuse        { message }: no published engine serves it; keep this UI
 */
function decide({ current, offered, releases, engine = null, variant = null }) {
  const version = offered && offered.version;
  if (!version) return { action: 'refuse', message: 'The update offers no version number.' };
  if (compareVersions(version, current) <= 0) return { action: 'none', version };
  const serving = [];
  for (const r of releases || []) {
    let ok = false;
    try { ok = admits(r.ui_compat, version); } catch { ok = false; } // a range we cannot read serves nobody
    if (!ok) continue;
    if (variant && Array.isArray(r.variants) && !r.variants.some((v) => v.id === variant)) continue;
    serving.push(r.version);
  }
  serving.sort((a, b) => compareVersions(b, a));
  if (serving.length === 0) {
    return {
      action: 'refuse', version,
      message: `PEFT Studio ${version} is available, but no published engine serves it yet` +
        `${variant ? ` for this computer (${variant})` : ''}; keeping ${current} until one is published.`,
    };
  }
  if (engine && serving.includes(engine)) return { action: 'install', version, engine };
  return { action: 'engine_first', version, engine: serving[0] };
}

// ---------- orchestration ----------

/**
 * One background check. Events (`app_update`): checking, up_to_date, refused
 * (message), engine (staging the engine the new UI needs), downloading, downloaded
 * (ready for quitAndInstall), failed (message).
 *
 *   updater:       { checkForUpdates(): Promise<{ updateInfo }|null>, downloadUpdate(): Promise }
 *   fetchReleases: () => Promise<[{ version, ui_compat, variants }]>
 *   stageEngine:   (uiVersion) => Promise<{ ok, message }>  (peft-bootstrap update --ui-version)
 *   current, engine(): the running engine's { version, variant } or null
 */
class AppUpdater extends EventEmitter {
  constructor({ updater, fetchReleases, stageEngine, current, engine = () => null }) {
    super();
    Object.assign(this, { updater, fetchReleases, stageEngine, current, engine });
    this.running = null;
  }

  say(state, extra = {}) {
    const ev = { event: 'app_update', state, ...extra };
    this.emit('event', ev);
    return ev;
  }

  check() {
    if (!this.running) this.running = this._check().finally(() => { this.running = null; });
    return this.running;
  }

  async _check() {
    this.say('checking');
    try {
      const result = await this.updater.checkForUpdates();
      const offered = result && result.updateInfo;
      if (!offered || compareVersions(offered.version, this.current) <= 0) return this.say('up_to_date', { version: this.current });
      const releases = await this.fetchReleases();
      const running = this.engine() || {};
      const d = decide({ current: this.current, offered, releases, engine: running.version || null, variant: running.variant || null });
      if (d.action === 'refuse') return this.say('refused', { version: d.version, message: d.message });
      if (d.action === 'none') return this.say('up_to_date', { version: this.current });
      if (d.action === 'engine_first') {
        this.say('engine', { version: d.version, engine: d.engine });
        const staged = await this.stageEngine(d.version);
        if (!staged || !staged.ok) {
          return this.say('refused', { version: d.version,
            message: `PEFT Studio ${d.version} needs engine ${d.engine}, which could not be fetched first (${staged ? staged.message : 'no result'}); keeping ${this.current}.` });
        }
      }
      this.say('downloading', { version: d.version });
      await this.updater.downloadUpdate();
      return this.say('downloaded', { version: d.version });
    } catch (err) {
      return this.say('failed', { message: err && err.message ? err.message : String(err) });
    }
  }
}

/** The engine manifest's releases, fetched as JSON (the decision only; installs stay signature-checked by peft-bootstrap). */
async function fetchReleases(manifestUrl, fetchImpl = globalThis.fetch) {
  if (manifestUrl.startsWith('file:')) {
    const { fileURLToPath } = require('node:url');
    return JSON.parse(fs.readFileSync(fileURLToPath(manifestUrl), 'utf8')).releases || [];
  }
  const res = await fetchImpl(manifestUrl, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`the engine manifest ${manifestUrl} answered HTTP ${res.status}`);
  const m = await res.json();
  return Array.isArray(m.releases) ? m.releases : [];
}

/**
 * Fetch and stage the engine a new UI needs, before that UI is installed:
 * `peft-bootstrap update --ui-version NEW --json` (signature-checked like every
 * install). Resolves { ok, version, message }: ok when an engine serving NEW is
 * staged, or the installed one already serves it (up_to_date).
 */
async function stageEngine({ bin, uiVersion, env = process.env, args = [], onEvent = () => {}, onStderr = () => {} }) {
  const { runBootstrap } = require('./bootstrap');
  const run = runBootstrap(bin, ['update', '--ui-version', uiVersion, ...args], { env, onEvent, onStderr });
  const result = await run.done;
  const staged = result.events.find((e) => e.event === 'staged');
  const upToDate = result.events.find((e) => e.event === 'up_to_date');
  if (result.code === 0 && (staged || upToDate)) return { ok: true, version: (staged || upToDate).version, staged: Boolean(staged) };
  const err = result.events.find((e) => e.event === 'error');
  return { ok: false, exit_code: result.code, message: err ? err.message : (result.error && result.error.message) || `update exited with status ${result.code}` };
}

module.exports = {
  stageEngine,
  readReleaseConfig, appFeedUrl, parseVersion, compareVersions, admits, decide, AppUpdater, fetchReleases, KEY_LINE,
};
