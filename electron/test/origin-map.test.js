'use strict';
// The legacy-origin rule (lib/origin-map.js): which requests are redirected to the
// engine, which get the token, what CORS answers, and how WebSocket URLs are rewritten.
const test = require('node:test');
const assert = require('node:assert/strict');
const { OriginMap, legacyOriginsFrom, parseLegacyOrigin, originOf, header, pageOf, urlFilter } = require('../lib/origin-map');

const ENGINE = { event: 'engine', state: 'running', url: 'http://127.0.0.1:41873', token: 'tok123' };
const APP = 'file:///opt/PEFT%20Studio/resources/app.asar/dist/index.html';

function map(legacy = 'http://localhost:8000', extra = {}) {
  const m = new OriginMap({ legacy: legacyOriginsFrom({ config: { legacy_origin: legacy } }), ...extra });
  m.setEngine(ENGINE);
  return m;
}

test('parseLegacyOrigin accepts loopback origins and says how to write a bad one', () => {
  assert.deepEqual(parseLegacyOrigin('http://localhost:8000'), { secure: false, port: '8000' });
  assert.deepEqual(parseLegacyOrigin('http://127.0.0.1:8000/'), { secure: false, port: '8000' });
  assert.deepEqual(parseLegacyOrigin('http://[::1]:9000'), { secure: false, port: '9000' });
  assert.deepEqual(parseLegacyOrigin('http://localhost'), { secure: false, port: '80' });
  assert.deepEqual(parseLegacyOrigin('https://localhost'), { secure: true, port: '443' });
  assert.deepEqual(parseLegacyOrigin(' http://localhost:8000 '), { secure: false, port: '8000' });
  assert.throws(() => parseLegacyOrigin('localhost:8000'), /must start with http:\/\/|not a URL/);
  assert.throws(() => parseLegacyOrigin('ws://localhost:8000'), /must start with http:\/\//);
  assert.throws(() => parseLegacyOrigin('http://example.com:8000'), /must name this machine/);
  assert.throws(() => parseLegacyOrigin('http://192.168.1.5:8000'), /must name this machine/);
  assert.throws(() => parseLegacyOrigin('http://localhost:8000/api'), /origin only/);
  assert.throws(() => parseLegacyOrigin('http://localhost:8000/?x=1'), /origin only/);
  assert.throws(() => parseLegacyOrigin('not a url'), /not a URL: write it as http:\/\/localhost:8000/);
});

test('legacyOriginsFrom: the variable wins over release.json; lists, blanks and duplicates', () => {
  assert.deepEqual(legacyOriginsFrom({}), []);
  assert.deepEqual(legacyOriginsFrom({ config: {} }), []);
  assert.deepEqual(legacyOriginsFrom({ config: { legacy_origin: '' } }), []);
  assert.deepEqual(legacyOriginsFrom({ config: { legacy_origin: 'http://localhost:8000' } }), [{ secure: false, port: '8000' }]);
  assert.deepEqual(legacyOriginsFrom({ config: { legacy_origin: ['http://localhost:8000', 'http://127.0.0.1:8000', 'http://localhost:8001'] } }),
    [{ secure: false, port: '8000' }, { secure: false, port: '8001' }], 'aliases of one port count once');
  assert.deepEqual(legacyOriginsFrom({ env: { PEFT_LEGACY_ORIGIN: 'http://localhost:7000, http://localhost:7001' }, config: { legacy_origin: 'http://localhost:8000' } }),
    [{ secure: false, port: '7000' }, { secure: false, port: '7001' }]);
  assert.throws(() => legacyOriginsFrom({ config: { legacy_origin: 8000 } }), /string or a list of strings/);
  assert.throws(() => legacyOriginsFrom({ config: { legacy_origin: ['http://evil.example:8000'] } }), /evil\.example.*must name this machine/);
});

test('originOf writes ports and maps file:// pages to one origin', () => {
  assert.equal(originOf('http://localhost/x'), 'http://localhost:80');
  assert.equal(originOf('https://a.example/'), 'https://a.example:443');
  assert.equal(originOf('ws://127.0.0.1:5/ws'), 'ws://127.0.0.1:5');
  assert.equal(originOf(APP), 'file://');
  assert.equal(originOf('nonsense'), null);
});

test('HTTP requests on the legacy origin from the app are redirected to the engine, path and query kept', () => {
  const m = map();
  const cases = [
    ['http://localhost:8000/api/models', 'http://127.0.0.1:41873/api/models'],
    ['http://localhost:8000/api/models?limit=5&q=a%20b', 'http://127.0.0.1:41873/api/models?limit=5&q=a%20b'],
    ['http://localhost:8000/', 'http://127.0.0.1:41873/'],
    ['http://localhost:8000', 'http://127.0.0.1:41873/'],
    ['http://127.0.0.1:8000/health', 'http://127.0.0.1:41873/health'],
    ['http://[::1]:8000/x', 'http://127.0.0.1:41873/x'],
    ['http://LOCALHOST:8000/x', 'http://127.0.0.1:41873/x'],
    ['http://localhost:8000/a#frag', 'http://127.0.0.1:41873/a'],
  ];
  for (const [from, to] of cases) assert.equal(m.redirect(from, APP), to, from);
});

test('other requests are left alone', () => {
  const m = map();
  for (const url of [
    'http://localhost:8001/api', // another port
    'http://localhost/api', // port 80
    'https://localhost:8000/api', // https is another origin
    'http://example.com:8000/api', // not this machine
    'http://127.0.0.1:41873/api', // already the engine
    'ws://localhost:8000/ws', // WebSockets go through mapWebSocket
    'file:///etc/passwd',
    'not a url',
  ]) assert.equal(m.redirect(url, APP), null, url);
});

test('only the app\'s own pages are served: a foreign page gets no redirect, no token, no WebSocket mapping', () => {
  const m = map('http://localhost:8000', { appOrigins: ['http://localhost:5173'] });
  const url = 'http://localhost:8000/api';
  assert.ok(m.redirect(url, APP), 'file:// page');
  assert.ok(m.redirect(url, 'http://localhost:5173/index.html'), 'the dev server listed in appOrigins');
  assert.ok(m.redirect(url, 'http://127.0.0.1:41873/ui/'), 'a page served by the engine itself');
  for (const page of ['https://evil.example/', 'http://localhost:5174/', 'http://localhost:8000/', '', undefined, 'about:blank']) {
    assert.equal(m.redirect(url, page), null, String(page));
    assert.equal(m.requestHeaders('http://127.0.0.1:41873/api', { Accept: '*/*' }, page), null, String(page));
    assert.equal(m.mapWebSocket('ws://localhost:8000/ws', page), 'ws://localhost:8000/ws', String(page));
  }
});

test('no engine running (or no legacy origin): nothing is redirected, nothing gets a token', () => {
  const m = map();
  m.setEngine({ event: 'engine', state: 'exited' });
  assert.equal(m.redirect('http://localhost:8000/api', APP), null);
  assert.equal(m.requestHeaders('http://127.0.0.1:41873/api', {}, APP), null);
  assert.equal(m.mapWebSocket('ws://localhost:8000/ws', APP), 'ws://localhost:8000/ws');
  const none = new OriginMap({ legacy: [] });
  none.setEngine(ENGINE);
  assert.equal(none.enabled, false);
  assert.equal(none.redirect('http://localhost:8000/api', APP), null);
  assert.equal(none.requestHeaders('http://127.0.0.1:41873/api', {}, APP), null);
});

test('a restarted engine (new port, new token) is followed at once', () => {
  const m = map();
  m.setEngine({ url: 'http://127.0.0.1:50001', token: 'second' });
  assert.equal(m.redirect('http://localhost:8000/a', APP), 'http://127.0.0.1:50001/a');
  assert.equal(m.requestHeaders('http://127.0.0.1:50001/a', {}, APP).headers.Authorization, 'Bearer second');
  assert.equal(m.requestHeaders('http://127.0.0.1:41873/a', {}, APP), null, 'the old engine is no longer ours');
});

test('requests to the engine get the bearer token and the engine\'s own Origin; other headers are kept', () => {
  const m = map();
  const r = m.requestHeaders('http://127.0.0.1:41873/api/x', { Accept: 'application/json', Origin: 'null', authorization: 'Bearer stale', 'Content-Type': 'application/json' }, APP);
  assert.deepEqual(r.headers, { Accept: 'application/json', 'Content-Type': 'application/json', Authorization: 'Bearer tok123', Origin: 'http://127.0.0.1:41873' });
  assert.equal(r.origin, 'null', 'the Origin the browser sent is reported for the CORS answer');
  const noOrigin = m.requestHeaders('http://127.0.0.1:41873/api/x', { Accept: '*/*' }, APP);
  assert.equal(noOrigin.origin, null);
  assert.equal('Origin' in noOrigin.headers, false, 'no Origin is invented for a same-origin or navigation request');
  const ws = m.requestHeaders('ws://127.0.0.1:41873/ws?peft_token=tok123', { Origin: 'file://' }, APP);
  assert.equal(ws.headers.Authorization, 'Bearer tok123', 'the WebSocket handshake gets the header too');
  assert.equal(ws.headers.Origin, 'http://127.0.0.1:41873');
  assert.equal(m.requestHeaders('http://127.0.0.1:9/api', {}, APP), null, 'another port on 127.0.0.1 is not the engine');
  assert.equal(m.requestHeaders('http://localhost:41873/api', {}, APP), null, 'only the URL the engine was given');
});

test('CORS: responses to the app answer the Origin the browser sent; preflights are answered 204', () => {
  const m = map();
  const plain = m.responseHeaders({ url: 'http://127.0.0.1:41873/api', pageUrl: APP, method: 'GET', requestOrigin: 'null',
    headers: { 'content-type': ['application/json'], 'access-control-allow-origin': ['http://localhost:3000'] }, statusCode: 200 });
  assert.deepEqual(plain.headers, { 'content-type': ['application/json'], 'Access-Control-Allow-Origin': ['null'], 'Access-Control-Allow-Credentials': ['true'] });
  assert.equal(plain.statusLine, undefined);

  const pre = m.responseHeaders({ url: 'http://127.0.0.1:41873/api', pageUrl: APP, method: 'OPTIONS', requestOrigin: 'null', headers: {}, statusCode: 405,
    requested: { method: 'POST', headers: 'content-type' } });
  assert.deepEqual(pre.headers['Access-Control-Allow-Methods'], ['POST']);
  assert.deepEqual(pre.headers['Access-Control-Allow-Headers'], ['content-type']);
  assert.equal(pre.statusLine, 'HTTP/1.1 204 No Content', 'an app without CORS middleware answers 405; the preflight still passes');
  const preOk = m.responseHeaders({ url: 'http://127.0.0.1:41873/api', pageUrl: APP, method: 'OPTIONS', requestOrigin: 'null', headers: {}, statusCode: 200,
    requested: { method: 'DELETE' } });
  assert.equal(preOk.statusLine, undefined, 'a 2xx preflight keeps its status');
  assert.equal(preOk.headers['Access-Control-Allow-Headers'], undefined);

  assert.equal(m.responseHeaders({ url: 'http://127.0.0.1:41873/api', pageUrl: APP, method: 'GET', requestOrigin: null, headers: {}, statusCode: 200 }), null,
    'no Origin sent: not a CORS request, left alone');
  assert.equal(m.responseHeaders({ url: 'http://127.0.0.1:41873/api', pageUrl: 'https://evil.example/', method: 'GET', requestOrigin: 'https://evil.example', headers: {}, statusCode: 200 }), null,
    'a foreign page is never granted CORS');
  assert.equal(m.responseHeaders({ url: 'http://localhost:9999/api', pageUrl: APP, method: 'GET', requestOrigin: 'null', headers: {}, statusCode: 200 }), null);
});

test('WebSockets on the legacy origin are rewritten to the engine with peft_token in the query', () => {
  const m = map();
  const cases = [
    ['ws://localhost:8000/ws', 'ws://127.0.0.1:41873/ws?peft_token=tok123'],
    ['ws://localhost:8000/ws/training/42?since=3', 'ws://127.0.0.1:41873/ws/training/42?since=3&peft_token=tok123'],
    ['ws://127.0.0.1:8000/ws', 'ws://127.0.0.1:41873/ws?peft_token=tok123'],
    ['ws://[::1]:8000/ws', 'ws://127.0.0.1:41873/ws?peft_token=tok123'],
    ['http://localhost:8000/ws', 'ws://127.0.0.1:41873/ws?peft_token=tok123'], // browsers accept http(s) URLs for WebSocket
    ['ws://localhost:8000/ws?peft_token=forged', 'ws://127.0.0.1:41873/ws?peft_token=tok123'],
    ['ws://localhost:8000', 'ws://127.0.0.1:41873/?peft_token=tok123'],
    ['ws://localhost:8000/a%20b?x=%2F', 'ws://127.0.0.1:41873/a%20b?x=%2F&peft_token=tok123'],
  ];
  for (const [from, to] of cases) assert.equal(m.mapWebSocket(from, APP), to, from);
  for (const other of ['ws://localhost:8001/ws', 'wss://localhost:8000/ws', 'wss://echo.example/ws', 'ws://127.0.0.1:41873/ws', 'garbage'])
    assert.equal(m.mapWebSocket(other, APP), other, other);
});

test('relative WebSocket URLs resolve against an http page like the browser does', () => {
  const m = map('http://localhost:8000', { appOrigins: ['http://localhost:8000'] });
  // a page served from the legacy origin itself (e.g. a dev proxy) opening "/ws"
  assert.equal(m.mapWebSocket('/ws', 'http://localhost:8000/index.html'), 'ws://127.0.0.1:41873/ws?peft_token=tok123');
  assert.equal(m.mapWebSocket('/ws', APP), '/ws', 'a relative URL in a file:// page is left to the browser');
});

test('header() reads Electron\'s header objects case-insensitively', () => {
  assert.equal(header({ 'Access-Control-Request-Method': 'POST' }, 'access-control-request-method'), 'POST');
  assert.equal(header({ 'x-a': ['1', '2'] }, 'X-A'), '1, 2');
  assert.equal(header({}, 'x'), undefined);
  assert.equal(header(undefined, 'x'), undefined);
});

test('pageOf: the requesting frame\'s URL, else the webContents\', else the referrer; a destroyed frame does not throw', () => {
  assert.equal(pageOf({ frame: { url: APP }, webContents: { getURL: () => 'x' } }), APP);
  assert.equal(pageOf({ frame: null, webContents: { getURL: () => 'file:///b' } }), 'file:///b');
  assert.equal(pageOf({ referrer: 'http://localhost:5173/' }), 'http://localhost:5173/');
  const gone = { get url() { throw new Error('Render frame was disposed'); } };
  assert.equal(pageOf({ frame: gone, referrer: 'r' }), 'r');
  assert.equal(pageOf({}), '');
});

test('urlFilter covers every scheme on localhost and 127.0.0.1, with no port (any port)', () => {
  const { urls } = urlFilter();
  assert.equal(urls.length, 8);
  for (const u of ['http://localhost/*', 'ws://localhost/*', 'https://127.0.0.1/*', 'wss://127.0.0.1/*']) assert.ok(urls.includes(u), u);
  assert.ok(urls.every((u) => !/:\d+\//.test(u) && !u.includes('[')), 'no ports, no IPv6 literal');
});
