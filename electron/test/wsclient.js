'use strict';
// A minimal WebSocket client for tests (Node 20 has no global WebSocket): the RFC 6455
// handshake over node:http, masked text frames out, unmasked frames in. It lets a test
// send exactly the headers a browser would (Origin, Sec-WebSocket-Protocol) and see
// the HTTP status of a refused handshake.

const crypto = require('node:crypto');
const http = require('node:http');

/**
 * Open `url` (ws://host:port/path?query). Resolves { status, headers, send(text), next(timeoutMs), close() }
 * on 101, or { status, headers, body } when the server refuses the handshake.
 */
function connect(url, { protocols = [], headers = {}, timeoutMs = 10000 } = {}) {
  const u = new URL(url);
  const key = crypto.randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, timeout: timeoutMs, agent: false, // never a kept-alive socket
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': key,
        ...(protocols.length ? { 'Sec-WebSocket-Protocol': protocols.join(', ') } : {}), ...headers,
      },
    });
    req.on('timeout', () => req.destroy(new Error(`no WebSocket answer from ${url} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('upgrade', (res, socket, head) => {
      const accept = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
      if (res.headers['sec-websocket-accept'] !== accept) { socket.destroy(); reject(new Error('bad Sec-WebSocket-Accept')); return; }
      resolve(new Connection(socket, head, res));
    });
    req.end();
  });
}

class Connection {
  constructor(socket, head, res) {
    this.status = res.statusCode;
    this.headers = res.headers;
    this.socket = socket;
    this.buf = head && head.length ? Buffer.from(head) : Buffer.alloc(0);
    this.frames = [];
    this.waiters = [];
    this.closed = false;
    socket.on('data', (c) => { this.buf = Buffer.concat([this.buf, c]); this._parse(); });
    socket.on('close', () => { this.closed = true; this._wake(); });
    socket.on('error', () => {});
    this._parse();
  }

  _parse() {
    for (;;) {
      if (this.buf.length < 2) break;
      const opcode = this.buf[0] & 0x0f;
      let len = this.buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (this.buf.length < 4) break; len = this.buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (this.buf.length < 10) break; len = Number(this.buf.readBigUInt64BE(2)); off = 10; }
      if (this.buf.length < off + len) break;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (opcode === 0x1 || opcode === 0x2) this.frames.push(payload.toString('utf8'));
      else if (opcode === 0x8) this.frames.push(null); // close
    }
    this._wake();
  }

  _wake() { for (const w of this.waiters.splice(0)) w(); }

  /** Send one masked text frame. */
  send(text) {
    const data = Buffer.from(text, 'utf8');
    const mask = crypto.randomBytes(4);
    const head = data.length < 126 ? Buffer.from([0x81, 0x80 | data.length])
      : Buffer.concat([Buffer.from([0x81, 0x80 | 126]), Buffer.from([data.length >> 8, data.length & 0xff])]);
    const body = Buffer.alloc(data.length);
    for (let i = 0; i < data.length; i++) body[i] = data[i] ^ mask[i % 4];
    this.socket.write(Buffer.concat([head, mask, body]));
  }

  /** The next text frame (null for a close frame); rejects after timeoutMs. */
  next(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no WebSocket message within ${timeoutMs} ms`)), timeoutMs);
      const check = () => {
        if (this.frames.length) { clearTimeout(timer); resolve(this.frames.shift()); return; }
        if (this.closed) { clearTimeout(timer); resolve(null); return; }
        this.waiters.push(check);
      };
      check();
    });
  }

  close() { this.socket.destroy(); }
}

module.exports = { connect };
