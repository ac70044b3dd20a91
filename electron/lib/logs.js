'use strict';
// Rotating log files under <app dir>/logs/: <name>.log, rolled to <name>.1.log ...
// <name>.<keep>.log when it passes maxBytes. Writes are synchronous appends: a log
// must survive the app being killed right after a line, and engine output is small.

const fs = require('node:fs');
const path = require('node:path');

class RotatingLog {
  constructor(dir, name, { maxBytes = 5 * 1024 * 1024, keep = 3 } = {}) {
    this.dir = dir;
    this.file = path.join(dir, `${name}.log`);
    this.name = name;
    this.maxBytes = maxBytes;
    this.keep = keep;
    fs.mkdirSync(dir, { recursive: true });
    try { this.size = fs.statSync(this.file).size; } catch { this.size = 0; }
  }

  write(text) {
    if (!text) return;
    const data = Buffer.from(text);
    if (this.size > 0 && this.size + data.length > this.maxBytes) this.rotate();
    fs.appendFileSync(this.file, data);
    this.size += data.length;
  }

  line(text) { this.write(`${new Date().toISOString()} ${text}\n`); }

  rotate() {
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = path.join(this.dir, `${this.name}.${i}.log`);
      if (fs.existsSync(from)) fs.renameSync(from, path.join(this.dir, `${this.name}.${i + 1}.log`));
    }
    if (fs.existsSync(this.file)) fs.renameSync(this.file, path.join(this.dir, `${this.name}.1.log`));
    this.size = 0;
  }
}

module.exports = { RotatingLog };
