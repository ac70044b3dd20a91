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

/** release.json beside `bootstrapBin`: { file, config } / { file, config: null } when absent / { file, problem } when unreadable. */
function read(bootstrapBin) {
  const file = path.join(path.dirname(bootstrapBin), 'release.json');
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) {
    if (err.code === 'ENOENT') return { file, config: null };
    return { file, config: null, problem: `cannot read ${file}: ${err.message}` };
  }
  try {
    const config = JSON.parse(text);
    if (!config || typeof config !== 'object' || Array.isArray(config)) throw new Error('not a JSON object');
    return { file, config };
  } catch (err) {
    return { file, config: null, problem: `${file} is not valid JSON: ${err.message}` };
  }
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

module.exports = { read, uiUrl, BOOTSTRAPPER_KEYS };
