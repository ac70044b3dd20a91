'use strict';
// The app's own small settings, remembered across launches in <userData>/settings.json
// (Electron's userData; headless: the app dir):
//   cacheDir  where the engine lives, when the person chose another location
//             ("Choose another location" after a full disk or a folder they may not write)
//   variant   the engine they switched to on the Engine page ("auto" or absent: let the
//             bootstrapper pick)
// Passed to the bootstrapper as --cache-dir / --variant. Nothing else: what
// release.json says (repository, channel, keys) is never repeated on the command line.

const fs = require('node:fs');
const path = require('node:path');

const FILE = 'settings.json';
const KNOWN = ['cacheDir', 'variant'];

function load(dir) {
  let raw;
  try { raw = JSON.parse(fs.readFileSync(path.join(dir, FILE), 'utf8')); } catch { return {}; }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const out = {};
  for (const k of KNOWN) if (typeof raw[k] === 'string' && raw[k]) out[k] = raw[k];
  return out;
}

/** Merge `patch` into the saved settings (a null/undefined value removes the key); returns the result. */
function save(dir, patch) {
  const next = { ...load(dir) };
  for (const [k, v] of Object.entries(patch)) {
    if (!KNOWN.includes(k)) throw new Error(`unknown setting ${k}`);
    if (v == null || v === '' || (k === 'variant' && v === 'auto')) delete next[k]; else next[k] = String(v);
  }
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, FILE);
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(next, null, 2)}\n`);
  fs.renameSync(`${file}.tmp`, file);
  return next;
}

/**
 * Can the engine live in `dir`? Makes `<dir>/PEFT Studio engine` (the folder the
 * bootstrapper gets) and checks it is writable. Resolves { ok, dir, problem }.
 * The person picks a parent folder (a disk, their home); the engine gets its own
 * folder inside it, so nothing of theirs is mixed with it.
 */
function prepareLocation(chosen) {
  const dir = path.basename(chosen) === 'PEFT Studio engine' ? chosen : path.join(chosen, 'PEFT Studio engine');
  try {
    fs.mkdirSync(dir, { recursive: true });
    const probe = path.join(dir, `.write-test-${process.pid}`);
    fs.writeFileSync(probe, 'ok');
    fs.rmSync(probe);
    return { ok: true, dir };
  } catch (err) {
    const why = err.code === 'EACCES' || err.code === 'EPERM' ? 'your account may not write there'
      : err.code === 'ENOSPC' ? 'that disk is full' : err.code === 'EROFS' ? 'that disk is read-only' : err.message;
    return { ok: false, dir, problem: `PEFT Studio cannot keep its engine in ${chosen}: ${why}. Choose another folder.` };
  }
}

/** The bootstrapper flags the settings imply (global flags: every command gets them). */
function settingsArgs(settings = {}) {
  return settings.cacheDir ? ['--cache-dir', settings.cacheDir] : [];
}

module.exports = { load, save, prepareLocation, settingsArgs, FILE };
