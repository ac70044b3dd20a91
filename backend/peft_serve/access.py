"""Who may talk to the served app (docs/CONTRACT.md §8, engine access).

The launcher starts the process with a fresh random ``PEFT_ENGINE_TOKEN``. Then, for
HTTP requests and WebSocket handshakes alike:

- ``Host`` must be ``127.0.0.1:<port>`` or ``localhost:<port>``, else 403: a web page
  that rebinds its own DNS name to 127.0.0.1 reaches the port but sends its own name
  as Host (DNS rebinding);
- an ``Origin`` header, when present, must be ``http://127.0.0.1:<port>``,
  ``http://localhost:<port>`` or one listed in ``PEFT_ALLOWED_ORIGINS`` (comma
  separated, exact match, e.g. ``file://,app://studio``), else 403: another web site's
  page (a browser always sends Origin on its cross-site requests and WebSockets);
- everything except ``GET``/``HEAD /health`` and CORS preflights (``OPTIONS`` with
  ``Access-Control-Request-Method``; browsers never send credentials on them) needs
  the token, else 401 (a WebSocket is refused before it opens). The token is
  accepted, compared in constant time, from the first of:

  1. ``Authorization: Bearer <token>`` (HTTP clients, Node, Python);
  2. the WebSocket subprotocol ``peft-token.<token>`` (browsers:
     ``new WebSocket(url, ["peft-token." + token])``). The guard removes it from the
     subprotocols the app sees, and when the app accepts without choosing one of its
     own it answers with that same subprotocol, as browsers require;
  3. the query parameter ``peft_token=<token>`` (``EventSource``, ``<img>``, a
     WebSocket URL), removed from the query string before the app sees it.

Without the variable (development from source, a bare frozen bundle as in
tests/quickstart) nothing is checked, and that is said once on stderr.

``AccessGuard`` is plain ASGI middleware: it runs before the app's routing and needs
no change to the app.
"""

import hmac
import json
import os
import sys
from urllib.parse import parse_qsl, urlencode

TOKEN_ENV = "PEFT_ENGINE_TOKEN"
ORIGINS_ENV = "PEFT_ALLOWED_ORIGINS"
SUBPROTOCOL_PREFIX = "peft-token."
QUERY_PARAM = "peft_token"
OPEN_PATHS = {("GET", "/health"), ("HEAD", "/health")}


def token_from_env(environ=None):
    """The token the launcher gave, or None when serving unguarded."""
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
    return value or None


def allowed_hosts(port):
    return {f"127.0.0.1:{port}", f"localhost:{port}"}


def allowed_origins(port, environ=None):
    extra = (os.environ if environ is None else environ).get(ORIGINS_ENV, "")
    return {f"http://{h}" for h in allowed_hosts(port)} | {o.strip() for o in extra.split(",") if o.strip()}


class AccessGuard:
    def __init__(self, app, token, port, origins=None, name="peft-serve"):
        self.app = app
        self.token = token.encode("utf-8")
        self.hosts = {h.encode("latin-1") for h in allowed_hosts(port)}
        self.origins = {o.encode("latin-1") for o in (origins if origins is not None else allowed_origins(port))}
        self.name = name

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = origin = auth = preflight = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.lower()
            elif name == b"origin":
                origin = value
            elif name == b"authorization":
                auth = value
            elif name == b"access-control-request-method":
                preflight = value
        if host not in self.hosts:
            shown = host.decode("latin-1", "replace") if host else "(none)"
            return await _refuse(scope, send, 403, f"Host {shown!r} is not this engine; "
                                 "use 127.0.0.1 or localhost with its port")
        if origin is not None and origin not in self.origins:
            return await _refuse(scope, send, 403, f"Origin {origin.decode('latin-1', 'replace')!r} may not use "
                                 f"this engine; the launcher lists allowed origins in {ORIGINS_ENV}")
        method = scope.get("method", "GET")
        if kind == "http" and ((method, scope["path"]) in OPEN_PATHS or (method == "OPTIONS" and preflight)):
            return await self.app(scope, receive, send)

        given, scope, chosen = self._token_of(scope, auth)
        if given is None or not hmac.compare_digest(given, self.token):
            return await _refuse(scope, send, 401, "missing or wrong token: send Authorization: Bearer "
                                 f"<{TOKEN_ENV}> (WebSocket: subprotocol {SUBPROTOCOL_PREFIX}<token> "
                                 f"or query {QUERY_PARAM}=<token>)", [(b"www-authenticate", b"Bearer")])
        if chosen is not None:
            send = _answer_subprotocol(send, chosen)
        return await self.app(scope, receive, send)

    def _token_of(self, scope, auth):
        """(token bytes or None, the scope the app gets, our subprotocol to echo or None)."""
        given = chosen = None
        if auth is not None and auth.startswith(b"Bearer "):
            given = auth[len(b"Bearer "):]
        if scope["type"] == "websocket":
            subs = list(scope.get("subprotocols") or ())
            ours = [s for s in subs if s.startswith(SUBPROTOCOL_PREFIX)]
            if ours:
                if given is None:
                    given = ours[0][len(SUBPROTOCOL_PREFIX):].encode("utf-8")
                chosen = ours[0]
                rest = [s for s in subs if not s.startswith(SUBPROTOCOL_PREFIX)]
                headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"sec-websocket-protocol"]
                if rest:
                    headers.append((b"sec-websocket-protocol", ", ".join(rest).encode("latin-1")))
                scope = dict(scope, subprotocols=rest, headers=headers)
        query = scope.get("query_string", b"")
        if QUERY_PARAM.encode() in query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            mine = [v for k, v in pairs if k == QUERY_PARAM]
            if mine:
                if given is None:
                    given = mine[0].encode("latin-1")
                rest = urlencode([(k, v) for k, v in pairs if k != QUERY_PARAM]).encode("latin-1")
                scope = dict(scope, query_string=rest)
        return given, scope, chosen


def _answer_subprotocol(send, chosen):
    async def wrapped(message):
        if message["type"] == "websocket.accept" and not message.get("subprotocol"):
            message = dict(message, subprotocol=chosen)
        await send(message)
    return wrapped


async def _refuse(scope, send, status, detail, extra=()):
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + list(extra)
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # the server answers 403 to a handshake closed before accept
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def guard(app, port, environ=None, name="peft-serve"):
    """Wrap ``app`` when a token was given; otherwise say on stderr that it is open."""
    token = token_from_env(environ)
    if token is None:
        sys.stderr.write(f"{name}: {TOKEN_ENV} is not set: serving without a token or Host check "
                         "(development mode; the app's launcher always sets it)\n")
        sys.stderr.flush()
        return app
    return AccessGuard(app, token, port, allowed_origins(port, environ), name)
