'use strict';
// A JSON-lines reader for the bootstrapper's and the engine's stdout.
//
// Feed it chunks as they arrive (Buffers or strings, split anywhere, even inside a
// multi-byte UTF-8 character or between "\r" and "\n"). It calls `onEvent(object)`
// for every complete line that is a JSON object with a string `event` field, known
// or not (unknown events are passed on: the wire format grows, docs/CONTRACT.md §4), and
// `onGarbage(text, why)` for anything else: blank lines are skipped, other lines that
// are not such objects, or longer than `maxLine` bytes, are reported and dropped, and
// reading goes on. `end()` flushes a last line without a newline.

const { StringDecoder } = require('node:string_decoder');

const DEFAULT_MAX_LINE = 1 << 20; // 1 MiB: the hardware event is ~2 KB; anything near this is not ours

class JsonLines {
  constructor({ onEvent, onGarbage = () => {}, maxLine = DEFAULT_MAX_LINE } = {}) {
    if (typeof onEvent !== 'function') throw new TypeError('JsonLines needs an onEvent callback');
    this.onEvent = onEvent;
    this.onGarbage = onGarbage;
    this.maxLine = maxLine;
    this.decoder = new StringDecoder('utf8');
    this.buf = '';
    this.skipping = false; // inside an over-long line: drop until its newline
  }

  push(chunk) {
    let text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    while (text.length > 0) {
      const nl = text.indexOf('\n');
      if (nl < 0) {
        if (!this.skipping) this.buf += text;
        if (this.buf.length > this.maxLine) {
          this.onGarbage(this.buf.slice(0, 200), `line longer than ${this.maxLine} bytes`);
          this.buf = '';
          this.skipping = true;
        }
        return;
      }
      const piece = text.slice(0, nl);
      text = text.slice(nl + 1);
      if (this.skipping) {
        this.skipping = false;
        this.buf = '';
        continue;
      }
      const line = this.buf + piece;
      this.buf = '';
      this._line(line);
    }
  }

  end() {
    const rest = this.buf + this.decoder.end();
    this.buf = '';
    if (!this.skipping) this._line(rest);
    this.skipping = false;
  }

  _line(raw) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    if (line.length > this.maxLine) {
      this.onGarbage(line.slice(0, 200), `line longer than ${this.maxLine} bytes`);
      return;
    }
    let value;
    try {
      value = JSON.parse(line);
    } catch (err) {
      this.onGarbage(line, `not JSON (${err.message})`);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value) || typeof value.event !== 'string') {
      this.onGarbage(line, 'not an object with an "event" field');
      return;
    }
    this.onEvent(value);
  }
}

/** Read a whole stream as JSON lines; resolves when it ends. */
function readJsonLines(stream, handlers) {
  const reader = new JsonLines(handlers);
  return new Promise((resolve, reject) => {
    stream.on('data', (c) => reader.push(c));
    stream.on('end', () => { reader.end(); resolve(); });
    stream.on('error', reject);
  });
}

module.exports = { JsonLines, readJsonLines, DEFAULT_MAX_LINE };
