'use strict';
// Where things are: the bootstrapper binary, the app's own folder (logs, engine
// record, launcher state), the backend source tree for development.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ELECTRON_DIR = path.resolve(__dirname, '..');
const REPO_DIR = path.dirname(ELECTRON_DIR);
const EXE = process.platform === 'win32' ? '.exe' : '';

/**
 * The peft-bootstrap binary: PEFT_BOOTSTRAP if set; else the packaged app's
 * resources (electron-builder's extraResources put it at <resources>/bin/);
 * else the workspace's target/release or target/debug build.
 */
function bootstrapperPath(env = process.env, resourcesPath = process.resourcesPath) {
  if (env.PEFT_BOOTSTRAP) return path.resolve(env.PEFT_BOOTSTRAP);
  const candidates = [];
  if (resourcesPath) candidates.push(path.join(resourcesPath, 'bin', `peft-bootstrap${EXE}`));
  candidates.push(path.join(REPO_DIR, 'target', 'release', `peft-bootstrap${EXE}`));
  candidates.push(path.join(REPO_DIR, 'target', 'debug', `peft-bootstrap${EXE}`));
  const found = candidates.find((p) => isExecutable(p));
  if (!found) {
    const err = new Error(`peft-bootstrap not found (looked at ${candidates.join(', ')}); ` +
      'set PEFT_BOOTSTRAP to its path, or build it with `cargo build -p peft-bootstrap`');
    err.code = 'ENOBOOTSTRAP';
    throw err;
  }
  return found;
}

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The OS per-user data folder, as the engine's paths.py and the bootstrapper's `dirs` use. */
function dataHome(env = process.env) {
  const home = os.homedir();
  if (process.platform === 'win32') return env.APPDATA || path.join(home, 'AppData', 'Roaming');
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support');
  return env.XDG_DATA_HOME || path.join(home, '.local', 'share');
}

/**
 * The launcher's own folder: logs/, engine.json (the engine record), launcher.json.
 * PEFT_APP_DIR wins; Electron passes app.getPath('userData'); headless defaults to
 * <data dir>/PEFT Studio/app.
 */
function appDir(env = process.env, fallback) {
  if (env.PEFT_APP_DIR) return path.resolve(env.PEFT_APP_DIR);
  return fallback || path.join(dataHome(env), 'PEFT Studio', 'app');
}

/** Python for development mode: the dev venv run-tests makes, else python3 / python on PATH. */
function devPython(env = process.env) {
  if (env.PEFT_DEV_PYTHON) return env.PEFT_DEV_PYTHON;
  const venv = process.platform === 'win32'
    ? path.join(REPO_DIR, 'target', 'venvs', 'dev', 'Scripts', 'python.exe')
    : path.join(REPO_DIR, 'target', 'venvs', 'dev', 'bin', 'python');
  if (isExecutable(venv)) return venv;
  return process.platform === 'win32' ? 'python' : 'python3';
}

module.exports = {
  ELECTRON_DIR, REPO_DIR, EXE, bootstrapperPath, dataHome, appDir, devPython, isExecutable,
  backendMain: path.join(REPO_DIR, 'backend', 'main.py'),
};
