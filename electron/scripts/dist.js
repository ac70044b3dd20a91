#!/usr/bin/env node
'use strict';
// Builds the installers with electron-builder, from two inputs:
//
//   PEFT_BOOTSTRAP_BIN   the peft-bootstrap build for the target OS/arch
//                        (default ../target/release/peft-bootstrap[.exe])
//   PEFT_RELEASE_JSON    the release configuration the app ships (docs/CONTRACT.md §4.6)
//                        (default ../target/release.json)
// and optionally
//   PEFT_ELECTRON_DIST   an unpacked Electron folder (or zip) instead of downloading it
//   PEFT_UPDATE_URL      where the app's own updates live (default: release.json's
//                        app_update_url, else derived from manifest_url: <root>/app/<channel>/)
//
//   node scripts/dist.js [--linux|--win|--mac] [--dir] [electron-builder flags...]
//
// Both inputs are copied to ../target/dist-inputs/bin/, which the config ships as
// <resources>/bin/ (where lib/paths.js looks). No backend bundle is ever packed.
// Signing: electron-builder signs when its variables are set (WIN_CSC_LINK /
// CSC_LINK, APPLE_API_KEY ...); without them the build still works and this script
// says loudly that it is unsigned.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { readReleaseConfig, appFeedUrl } = require('../lib/app-update');

const ELECTRON_DIR = path.resolve(__dirname, '..');
const TARGET = path.resolve(ELECTRON_DIR, '..', 'target');
const STAGE = path.join(TARGET, 'dist-inputs', 'bin');
const PLATFORMS = { '--linux': 'linux', '--win': 'win32', '--mac': 'darwin' };

class DistError extends Error {}

function parseArgs(argv) {
  const platform = argv.map((a) => PLATFORMS[a]).find(Boolean) || process.platform;
  return { platform, passthrough: argv };
}

/** Copy the bootstrapper and release.json to STAGE; returns what was staged. */
function stageInputs(env, platform, stage = STAGE) {
  const exe = platform === 'win32' ? 'peft-bootstrap.exe' : 'peft-bootstrap';
  const bin = path.resolve(env.PEFT_BOOTSTRAP_BIN || path.join(TARGET, 'release', exe));
  const rel = path.resolve(env.PEFT_RELEASE_JSON || path.join(TARGET, 'release.json'));
  if (!fs.existsSync(bin) || !fs.statSync(bin).isFile()) {
    throw new DistError(`the bootstrapper ${bin} does not exist: build it (cargo build --release -p peft-bootstrap, ` +
      'with --target for another arch) or set PEFT_BOOTSTRAP_BIN to its path');
  }
  if (path.basename(bin) !== exe) throw new DistError(`PEFT_BOOTSTRAP_BIN is ${bin}; for ${platform} it must be a file named ${exe}`);
  const config = readReleaseConfig(rel); // throws with the file and the problem
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  fs.copyFileSync(bin, path.join(stage, exe));
  fs.chmodSync(path.join(stage, exe), 0o755);
  fs.copyFileSync(rel, path.join(stage, 'release.json'));
  return { bin, releaseJson: rel, config, exe };
}

/** Warnings for a build that will not be signed (it still works, for development). */
function signingWarnings(env, platform) {
  const w = [];
  if (platform === 'win32' && !(env.WIN_CSC_LINK || env.CSC_LINK || env.AZURE_TENANT_ID)) {
    w.push('UNSIGNED Windows build: no WIN_CSC_LINK/CSC_LINK (or Azure Trusted Signing) is set. SmartScreen will warn users ' +
      'about the installer, the app and peft-bootstrap.exe. Fine for development; releases set the secrets in docs/RELEASING.md.');
  }
  if (platform === 'darwin') {
    if (!env.CSC_LINK && !env.CSC_NAME) {
      w.push('UNSIGNED macOS build (ad-hoc at best): no CSC_LINK is set. Gatekeeper will refuse to open it on other Macs. ' +
        'Fine for development; releases set the secrets in docs/RELEASING.md.');
    }
    if (!env.APPLE_API_KEY && !env.APPLE_ID && !env.APPLE_KEYCHAIN_PROFILE) {
      w.push('macOS build NOT NOTARIZED: set APPLE_API_KEY, APPLE_API_KEY_ID and APPLE_API_ISSUER (docs/RELEASING.md).');
    }
  }
  return w;
}

function main(argv = process.argv.slice(2), env = process.env) {
  const { platform, passthrough } = parseArgs(argv);
  const staged = stageInputs(env, platform);
  const feed = env.PEFT_UPDATE_URL || appFeedUrl(staged.config);
  process.stderr.write(`dist: bootstrapper ${staged.bin}\ndist: release.json ${staged.releaseJson} ` +
    `(manifest ${staged.config.manifest_url})\ndist: app updates from ${feed || '(none: no update feed)'}\n`);
  for (const w of signingWarnings(env, platform)) process.stderr.write(`dist: warning: ${w}\n`);
  const args = ['--config', 'electron-builder.json', '--publish', 'never'];
  if (feed) args.push(`-c.publish.url=${feed}`);
  if (env.PEFT_ELECTRON_DIST) args.push(`-c.electronDist=${path.resolve(env.PEFT_ELECTRON_DIST)}`);
  args.push(...passthrough);
  const cli = require.resolve('electron-builder/cli.js', { paths: [ELECTRON_DIR] });
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: ELECTRON_DIR, stdio: 'inherit', env });
  return r.status == null ? 1 : r.status;
}

if (require.main === module) {
  try {
    process.exitCode = main();
  } catch (err) {
    if (!(err instanceof DistError) && err.code !== 'ERELEASECONFIG') throw err;
    process.stderr.write(`dist: error: ${err.message}\n`);
    process.exitCode = 2;
  }
}

module.exports = { stageInputs, signingWarnings, parseArgs, STAGE, DistError };
