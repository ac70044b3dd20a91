'use strict';
// A lab's pre-fetched folder beside the app: `peft-backend-bundles/` (docs/OFFLINE.md).
//
// peft-bootstrap looks beside its own executable and up to two folders up, which
// inside a packaged app is <app>/resources/bin, <app>/resources and <app>. The app
// adds the places only it knows: beside the app's folder (an unpacked zip on a
// stick), beside an AppImage (APPIMAGE), beside a portable .exe
// (PORTABLE_EXECUTABLE_DIR), and beside `PEFT Studio.app` on macOS. When one holds a
// repository (a `channels/` folder) and the user set neither PEFT_OFFLINE_DIR nor
// PEFT_MANIFEST_URL, the launcher passes it as --offline-dir.

const fs = require('node:fs');
const path = require('node:path');

const FOLDER = 'peft-backend-bundles';

function candidates(exePath, env = process.env) {
  const out = [];
  const add = (d) => { if (d) { const p = path.join(d, FOLDER); if (!out.includes(p)) out.push(p); } };
  const appDir = path.dirname(exePath);
  add(appDir);
  add(path.dirname(appDir));
  if (env.APPIMAGE) add(path.dirname(env.APPIMAGE));
  if (env.PORTABLE_EXECUTABLE_DIR) add(env.PORTABLE_EXECUTABLE_DIR);
  const parts = exePath.split(path.sep);
  const i = parts.findIndex((p) => p.endsWith('.app'));
  if (i > 0) add(parts.slice(0, i).join(path.sep) || path.sep);
  return out;
}

function findBundlesFolder(exePath, env = process.env) {
  if (env.PEFT_OFFLINE_DIR || env.PEFT_MANIFEST_URL) return null;
  return candidates(exePath, env).find((d) => {
    try { return fs.statSync(path.join(d, 'channels')).isDirectory(); } catch { return false; }
  }) || null;
}

module.exports = { candidates, findBundlesFolder, FOLDER };
