'use strict';
// The page side of the legacy origin for WebSockets (docs/CONTRACT.md §10.2).
//
// Electron ignores webRequest's `redirectURL` for WebSocket requests
// (electron/electron#51505), so `new WebSocket('ws://localhost:8000/ws')` in a renderer
// written against a fixed origin cannot be redirected by the main process. Instead the
// preload runs installWebSocketShim in the page's own world before the page's scripts:
// it replaces `WebSocket` with a constructor that asks the main process (through the
// preload's `mapWebSocketUrl`, a synchronous IPC call answered by OriginMap.mapWebSocket)
// which URL to open, and opens the native WebSocket there. URLs that are not on the
// legacy origin come back unchanged. `instanceof WebSocket`, the constants and the
// prototype stay the native ones. The socket's `url` is the engine URL it really opened.
//
// This function is serialized (Function.prototype.toString) and must stay
// self-contained: no closures over this module.

function installWebSocketShim(win, map) {
  const Native = win.WebSocket;
  if (typeof Native !== 'function' || Native.peftLegacyShim === true) return false;
  function WebSocket(url, protocols) {
    if (!new.target) throw new TypeError("Failed to construct 'WebSocket': Please use the 'new' operator");
    let target = url;
    try {
      const mapped = map(String(url));
      if (typeof mapped === 'string' && mapped) target = mapped;
    } catch (_) {
      // the bridge is gone (page unloading): open what the page asked for
    }
    return protocols === undefined ? new Native(target) : new Native(target, protocols);
  }
  WebSocket.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) {
    Object.defineProperty(WebSocket, k, { value: Native[k], enumerable: true });
  }
  Object.defineProperty(WebSocket, 'peftLegacyShim', { value: true });
  Object.defineProperty(win, 'WebSocket', { value: WebSocket, writable: true, configurable: true, enumerable: false });
  return true;
}

/**
 * The script the preload runs in the page (webFrame.executeJavaScript): installs the
 * shim with the preload's bridged `mapWebSocketUrl`, from `window.peft` (this
 * repository's preload) or `window.electronAPI` (an app's own preload that added it),
 * captured at install time. Without either, nothing is installed.
 */
function shimScript() {
  return `(() => { const api = (window.peft && window.peft.mapWebSocketUrl) ? window.peft : window.electronAPI;
  if (api && typeof api.mapWebSocketUrl === 'function') (${installWebSocketShim.toString()})(window, api.mapWebSocketUrl); })();`;
}

module.exports = { installWebSocketShim, shimScript };
