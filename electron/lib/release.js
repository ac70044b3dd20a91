'use strict';
// release.json, the release configuration beside the peft-bootstrap binary (packaged
// app: <resources>/bin/release.json). The bootstrapper reads it for the repository,
// channel, mirrors and keys, so the launcher passes none of those. The app reads one
// key itself: `ui_url`, the UI to load once the engine runs (an http(s):// or
// file:// URL, or a path relative to the folder holding release.json). Without it the
// Engine page is shown.

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

/**
 * The one reader of a release.json file (the renderer bridge and app updates read it
 * through here too): { file, config } / { file, config: null } when absent /
 * { file, config: null, problem, cause } when it cannot be read (cause.kind 'read',
 * cause.code), is not JSON ('json', cause.detail) or is not a JSON object ('shape').
 */
function readFile(file) {
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
    if (err.code === 'ENOENT') return { file, config: null };
    return { file, config: null, problem: `cannot read ${file}: ${err.message}`, cause: { kind: 'read', code: err.code || err.message } };
  }
  let config;
  try { config = JSON.parse(text); } catch (err) {
    return { file, config: null, problem: `${file} is not valid JSON: ${err.message}`, cause: { kind: 'json', detail: err.message } };
  }
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    return { file, config: null, problem: `${file} must hold a JSON object`, cause: { kind: 'shape' } };
  }
  return { file, config };
}

/** release.json beside `bootstrapBin` (see readFile). */
function read(bootstrapBin) {
  return readFile(path.join(path.dirname(bootstrapBin), 'release.json'));
}

/** The UI to load after "ready", as a URL, or null (then the Engine page). */
function uiUrl(rel) {
  const v = rel && rel.config && rel.config.ui_url;
  if (typeof v !== 'string' || !v.trim()) return null;
  const s = v.trim();
  if (/^(https?|file):\/\//i.test(s)) return s;
  if (/^[a-z][a-z0-9+.-]*:/i.test(s) && !/^[a-z]:[\\/]/i.test(s)) return null; // another scheme: never loaded
  return pathToFileURL(path.resolve(path.dirname(rel.file), s)).href;
}

/** The keys of release.json the bootstrapper reads itself: the launcher must not pass them as flags. */
const BOOTSTRAPPER_KEYS = { manifest_url: '--manifest-url', channel: '--channel', mirrors: '--mirror', trusted_keys: '--trusted-key' };

module.exports = { read, readFile, uiUrl, BOOTSTRAPPER_KEYS };
