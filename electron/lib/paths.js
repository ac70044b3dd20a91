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

/**
 * Python for development mode, first found: PEFT_DEV_PYTHON; the dev venv
 * `backend/run-tests` makes (target/venvs/dev, dev-full); the venv `tests/quickstart`
 * and `backend/build-bundle` make for the frozen build (target/venvs/core-cpu,
 * full-cpu: they hold the engine's requirements too); else python3 / python on PATH.
 */
function devPython(env = process.env) {
  return devPythonChoice(env).python;
}

const DEV_VENVS = ['dev', 'dev-full', 'core-cpu', 'full-cpu'];

/** { python, venv } — venv null when falling back to PATH's python (which may lack the engine's packages). */
function devPythonChoice(env = process.env, repoDir = REPO_DIR) {
  if (env.PEFT_DEV_PYTHON) return { python: env.PEFT_DEV_PYTHON, venv: 'PEFT_DEV_PYTHON' };
  for (const name of DEV_VENVS) {
    const venv = path.join(repoDir, 'target', 'venvs', name);
    const py = process.platform === 'win32' ? path.join(venv, 'Scripts', 'python.exe') : path.join(venv, 'bin', 'python');
    if (isExecutable(py)) return { python: py, venv };
  }
  return { python: process.platform === 'win32' ? 'python' : 'python3', venv: null };
}

/** The exact command that makes the dev venv (said when development mode has no Python with the engine's packages). */
function devVenvCommand() {
  return `backend/build-bundle --variant ${cpuVariant()} --profile core --out target/bundles/dev --venv-only`;
}

/**
 * Why development mode cannot start the engine, or null: PATH's python without the
 * engine's packages (no venv found) is named with the command that makes one.
 */
function devPythonProblem(env = process.env, repoDir = REPO_DIR) {
  const { python, venv } = devPythonChoice(env, repoDir);
  if (venv === 'PEFT_DEV_PYTHON' && python.includes(path.sep) && !isExecutable(python)) {
    return `PEFT_DEV_PYTHON names ${python}, which is not an executable file. Point it at a Python with the engine's packages, `
      + `or unset it and make the dev venv with:  ${devVenvCommand()}`;
  }
  if (venv) return null;
  const r = require('node:child_process').spawnSync(python, ['-c', 'import fastapi, uvicorn'], { encoding: 'utf8', timeout: 20000, env });
  if (r.status === 0) return null;
  return `development mode needs a Python with the engine's packages, and found none: no venv under ${path.join(repoDir, 'target', 'venvs')} `
    + `(${DEV_VENVS.join(', ')}) and ${python} ${r.error ? `cannot run (${r.error.message})` : 'lacks fastapi/uvicorn'}. `
    + `Make one from the repository root with:  ${devVenvCommand()}  (or backend/run-tests, or tests/quickstart; or set PEFT_DEV_PYTHON)`;
}

/**
 * The CPU engine's variant id for this machine: "linux-x86_64-cpu",
 * "macos-arm64-cpu" (Apple Silicon: ids say arm64, never aarch64), "windows-x86_64-cpu".
 */
function cpuVariant(platform = process.platform, arch = process.arch) {
  const os = { linux: 'linux', darwin: 'macos', win32: 'windows' }[platform] || platform;
  const a = { x64: 'x86_64', arm64: 'arm64', aarch64: 'arm64' }[arch] || arch;
  return `${os}-${a}-cpu`;
}

module.exports = {
  ELECTRON_DIR, REPO_DIR, EXE, bootstrapperPath, dataHome, appDir, devPython, devPythonChoice, devPythonProblem, devVenvCommand, cpuVariant, isExecutable,
  backendMain: path.join(REPO_DIR, 'backend', 'main.py'),
};
