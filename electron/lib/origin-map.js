'use strict';
// The legacy origin (docs/CONTRACT.md §10.2): a renderer written against a fixed
// http://localhost:PORT / ws://localhost:PORT, with no token, talks to the running
// engine (http://127.0.0.1:<random port>, token required) without being rewritten.
//
// This module only decides; main.js wires it to Electron:
//   session.webRequest.onBeforeRequest     -> map.redirect(url, pageUrl)
//   session.webRequest.onBeforeSendHeaders -> map.requestHeaders(url, headers, pageUrl)
//   session.webRequest.onHeadersReceived   -> map.responseHeaders({...})
//   ipcMain 'backend:map-websocket' (sync) -> map.mapWebSocket(url, pageUrl)
// WebSockets need the last one because Electron ignores `redirectURL` for WebSocket
// requests (electron/electron#51505): the preload wraps the page's WebSocket so the
// URL is rewritten before the socket opens (ws-shim.js).
//
// Only the app's own pages are served: the page making the request must be a file://
// page, a page on one of `appOrigins` (the origin of ui_url, "app_origins"), or a page
// served by the engine itself. A foreign page in the same session gets nothing: no
// redirect, no token.

const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];
const TOKEN_PARAM = 'peft_token';

/** A configured legacy origin, checked: `http://HOST:PORT` with a loopback host. */
function parseLegacyOrigin(text) {
  let u;
  try {
    u = new URL(String(text).trim());
  } catch {
    throw new Error(`legacy_origin ${JSON.stringify(text)} is not a URL: write it as http://localhost:8000`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new Error(`legacy_origin ${JSON.stringify(text)} must start with http:// (the WebSocket origin ws:// is mapped with it): write it as http://localhost:8000`);
  }
  if (!LOOPBACK.includes(u.hostname)) {
    throw new Error(`legacy_origin ${JSON.stringify(text)} must name this machine (localhost, 127.0.0.1 or [::1]); a renderer calling another host is not talking to its own backend`);
  }
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username || u.password) {
    throw new Error(`legacy_origin ${JSON.stringify(text)} must be an origin only (scheme, host and port), e.g. http://localhost:8000`);
  }
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return { secure: u.protocol === 'https:', port };
}

/**
 * The legacy origins configured: PEFT_LEGACY_ORIGIN (comma-separated) wins over
 * release.json's `legacy_origin` (a string or a list). [] when none. Throws with the
 * offending value when one is invalid.
 */
function legacyOriginsFrom({ env = {}, config = {} } = {}) {
  let raw = env.PEFT_LEGACY_ORIGIN ? env.PEFT_LEGACY_ORIGIN.split(',') : config.legacy_origin;
  if (raw == null || raw === '') return [];
  if (!Array.isArray(raw)) raw = [raw];
  const out = [];
  for (const r of raw) {
    if (typeof r !== 'string') throw new Error(`legacy_origin must be a string or a list of strings, not ${JSON.stringify(r)}`);
    if (r.trim() === '') continue;
    const o = parseLegacyOrigin(r);
    if (!out.some((x) => x.port === o.port && x.secure === o.secure)) out.push(o);
  }
  return out;
}

/** `scheme://host:port` of a URL string, or null. Ports are always written. */
function originOf(url) {
  let u;
  try { u = new URL(url); } catch { return null; }
  if (u.protocol === 'file:') return 'file://';
  const dflt = { 'http:': '80', 'ws:': '80', 'https:': '443', 'wss:': '443' }[u.protocol];
  if (!dflt) return `${u.protocol}//${u.host}`;
  return `${u.protocol}//${u.hostname}:${u.port || dflt}`;
}

class OriginMap {
  /**
   * @param {object} o
   * @param {Array<{secure:boolean,port:string}>} o.legacy  legacyOriginsFrom(...)
   * @param {string[]} [o.appOrigins]  origins of the app's own pages besides file://
   */
  constructor({ legacy = [], appOrigins = [] } = {}) {
    this.legacy = legacy;
    this.appOrigins = new Set(appOrigins.map(originOf).filter(Boolean));
    this.engine = null; // { origin: 'http://127.0.0.1:P', host: '127.0.0.1:P', token }
  }

  get enabled() { return this.legacy.length > 0; }

  /** The running engine (an `engine` event with state running), or null while none runs. */
  setEngine(engine) {
    if (!engine || !engine.url || !engine.token) { this.engine = null; return; }
    const u = new URL(engine.url);
    this.engine = { origin: originOf(engine.url), host: u.host, token: engine.token };
  }

  /** Is `url` on a legacy origin (any loopback alias of a configured port)? `ws`/`wss` count with `http`/`https`. */
  isLegacy(url) {
    let u;
    try { u = new URL(url); } catch { return false; }
    const secure = u.protocol === 'https:' || u.protocol === 'wss:';
    if (!secure && u.protocol !== 'http:' && u.protocol !== 'ws:') return false;
    if (!LOOPBACK.includes(u.hostname)) return false;
    const port = u.port || (secure ? '443' : '80');
    return this.legacy.some((o) => o.port === port && o.secure === secure);
  }

  /** Is `url` the running engine (http or ws)? */
  isEngine(url) {
    if (!this.engine) return false;
    const o = originOf(url);
    if (!o) return false;
    return o === this.engine.origin || o === this.engine.origin.replace(/^http:/, 'ws:');
  }

  /** May `pageUrl` (the page making a request) use the engine? */
  isAppPage(pageUrl) {
    if (!pageUrl) return false;
    const o = originOf(pageUrl);
    if (!o) return false;
    if (o === 'file://') return true;
    if (this.appOrigins.has(o)) return true;
    return this.isEngine(pageUrl);
  }

  /** The engine URL for a legacy http(s) request from an app page, or null (leave it alone). */
  redirect(url, pageUrl) {
    if (!this.enabled || !this.engine || !this.isAppPage(pageUrl)) return null;
    let u;
    try { u = new URL(url); } catch { return null; }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
    if (!this.isLegacy(url)) return null;
    return `${this.engine.origin}${u.pathname}${u.search}`;
  }

  /**
   * What `new WebSocket(url)` in an app page should open: a legacy ws(s) URL becomes
   * ws://<engine>/<same path>?<same query>&peft_token=<token>; anything else is returned
   * unchanged (so is a legacy URL while no engine runs: it fails as it did before).
   * Relative and http(s) URLs are resolved against the page as the browser would.
   */
  mapWebSocket(url, pageUrl) {
    if (!this.enabled || !this.engine || !this.isAppPage(pageUrl)) return url;
    let u;
    try { u = pageUrl && !/^file:/.test(pageUrl) ? new URL(url, pageUrl) : new URL(url); } catch { return url; }
    if (u.protocol === 'http:') u.protocol = 'ws:';
    else if (u.protocol === 'https:') u.protocol = 'wss:';
    if (u.protocol !== 'ws:' && u.protocol !== 'wss:') return url;
    if (!this.isLegacy(u.href)) return url;
    const q = new URLSearchParams(u.search);
    q.delete(TOKEN_PARAM);
    q.append(TOKEN_PARAM, this.engine.token);
    return `ws://${this.engine.host}${u.pathname}?${q.toString()}`;
  }

  /**
   * Headers for a request about to be sent, or null to send it unchanged. A request
   * to the engine from an app page gets `Authorization: Bearer <token>` and `Origin`
   * set to the engine's own origin (the engine refuses foreign origins). `origin` in
   * the answer is the Origin the browser had set (to answer CORS with; null if none).
   */
  requestHeaders(url, headers, pageUrl) {
    if (!this.enabled || !this.engine || !this.isEngine(url) || !this.isAppPage(pageUrl)) return null;
    const out = {};
    let origin = null;
    for (const [k, v] of Object.entries(headers || {})) {
      const lk = k.toLowerCase();
      if (lk === 'authorization') continue;
      if (lk === 'origin') { origin = v; continue; }
      out[k] = v;
    }
    out.Authorization = `Bearer ${this.engine.token}`;
    if (origin !== null) out.Origin = this.engine.origin;
    return { headers: out, origin };
  }

  /**
   * Response headers for a response from the engine to an app page, or null to leave
   * it. `requestOrigin` is what requestHeaders() reported. The page's origin is the
   * one the browser checks, so CORS is answered for it; a preflight (OPTIONS with
   * Access-Control-Request-Method) is answered 204 with what it asked for.
   */
  responseHeaders({ url, pageUrl, method, requestOrigin, headers = {}, statusCode, requested = {} }) {
    if (!this.enabled || !this.engine || !this.isEngine(url) || !this.isAppPage(pageUrl)) return null;
    if (requestOrigin == null) return null; // not a CORS request: nothing to answer
    const out = {};
    for (const [k, v] of Object.entries(headers)) {
      if (!/^access-control-allow-/i.test(k)) out[k] = v;
    }
    out['Access-Control-Allow-Origin'] = [requestOrigin];
    out['Access-Control-Allow-Credentials'] = ['true'];
    const preflight = method === 'OPTIONS' && requested.method;
    if (!preflight) return { headers: out };
    out['Access-Control-Allow-Methods'] = [requested.method];
    if (requested.headers) out['Access-Control-Allow-Headers'] = [requested.headers];
    out['Access-Control-Max-Age'] = ['600'];
    const ok = statusCode >= 200 && statusCode < 300;
    return ok ? { headers: out } : { headers: out, statusLine: 'HTTP/1.1 204 No Content' };
  }
}

/** A header's value from Electron's header objects (case-insensitive; arrays joined). */
function header(headers, name) {
  if (!headers) return undefined;
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined) return undefined;
  const v = headers[key];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** The page that made a request, from Electron's webRequest details. */
function pageOf(details) {
  try { // a frame or webContents destroyed meanwhile throws on access
    if (details.frame && typeof details.frame.url === 'string' && details.frame.url) return details.frame.url;
    if (details.webContents && typeof details.webContents.getURL === 'function') {
      const u = details.webContents.getURL();
      if (u) return u;
    }
  } catch { /* fall back to the referrer */ }
  return details.referrer || '';
}

/**
 * The URL patterns the listeners need: every port of localhost and 127.0.0.1 (a match
 * pattern without a port matches any port). `[::1]` is left out of the filter, since
 * an IPv6 literal is not a pattern every Electron version accepts: a renderer calling
 * http://[::1]:PORT is not mapped.
 */
function urlFilter() {
  const urls = [];
  for (const host of ['localhost', '127.0.0.1']) for (const scheme of ['http', 'https', 'ws', 'wss']) urls.push(`${scheme}://${host}/*`);
  return { urls };
}

/**
 * Wires `map` to an Electron session's webRequest (the only Electron-facing part;
 * `session` can be any object with that shape, which is how it is tested). Navigations
 * (mainFrame/subFrame) are never redirected: only a page's own requests are.
 */
function attachToSession(session, map) {
  const wr = session.webRequest;
  const filter = urlFilter();
  const origins = new Map(); // request id -> the Origin the browser sent
  wr.onBeforeRequest(filter, (details, callback) => {
    if (details.resourceType === 'mainFrame' || details.resourceType === 'subFrame') return callback({});
    const to = map.redirect(details.url, pageOf(details));
    callback(to ? { redirectURL: to } : {});
  });
  wr.onBeforeSendHeaders(filter, (details, callback) => {
    const r = map.requestHeaders(details.url, details.requestHeaders, pageOf(details));
    if (!r) return callback({});
    if (r.origin !== null) {
      if (origins.size > 10000) origins.clear();
      origins.set(details.id, { origin: r.origin, requested: {
        method: header(details.requestHeaders, 'access-control-request-method'),
        headers: header(details.requestHeaders, 'access-control-request-headers') } });
    }
    callback({ requestHeaders: r.headers });
  });
  wr.onHeadersReceived(filter, (details, callback) => {
    const sent = origins.get(details.id) || { origin: null, requested: {} };
    origins.delete(details.id);
    const r = map.responseHeaders({
      url: details.url, pageUrl: pageOf(details), method: details.method, requestOrigin: sent.origin,
      headers: details.responseHeaders || {}, statusCode: details.statusCode, requested: sent.requested,
    });
    if (!r) return callback({});
    callback(r.statusLine ? { responseHeaders: r.headers, statusLine: r.statusLine } : { responseHeaders: r.headers });
  });
  return filter;
}

module.exports = { OriginMap, attachToSession, pageOf, urlFilter, legacyOriginsFrom, parseLegacyOrigin, originOf, header, TOKEN_PARAM, LOOPBACK };
