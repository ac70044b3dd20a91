'use strict';
// electron-builder afterPack hook: runs after the app folder is assembled and before
// electron-builder signs it.
// - Every OS: resources/bin/peft-bootstrap must be there and executable, with its
//   release.json (a build without them would install no engine at all).
// - Windows: sign resources/bin/peft-bootstrap.exe with the same certificate and
//   options as the app (electron-builder itself signs only the app's .exe and
//   app.asar.unpacked). Without a certificate electron-builder skips it, as for the app.
// - macOS: nothing to do here: @electron/osx-sign signs every Mach-O in the .app,
//   Resources/bin/peft-bootstrap included, with the hardened runtime and entitlements.
const fs = require('node:fs');
const path = require('node:path');

function resourcesDir(context) {
  const name = context.packager.appInfo.productFilename;
  return context.electronPlatformName === 'darwin'
    ? path.join(context.appOutDir, `${name}.app`, 'Contents', 'Resources')
    : path.join(context.appOutDir, 'resources');
}

exports.default = async function afterPack(context) {
  const win = context.electronPlatformName === 'win32';
  const bin = path.join(resourcesDir(context), 'bin');
  const exe = path.join(bin, win ? 'peft-bootstrap.exe' : 'peft-bootstrap');
  if (!fs.existsSync(exe)) throw new Error(`afterPack: ${exe} is missing; run the build through scripts/dist.js (npm run dist)`);
  if (!fs.existsSync(path.join(bin, 'release.json'))) throw new Error(`afterPack: ${path.join(bin, 'release.json')} is missing`);
  if (!win) fs.chmodSync(exe, 0o755);
  if (win && typeof context.packager.signIf === 'function') await context.packager.signIf(exe);
};
exports.resourcesDir = resourcesDir;
