"""Who may talk to the engine (docs/CONTRACT.md §8, engine access).

The launcher starts the engine with a fresh random ``PEFT_ENGINE_TOKEN``. Then:

- every request must carry ``Host: 127.0.0.1:<port>`` or ``Host: localhost:<port>``,
  else 403: a web page that rebinds its own DNS name to 127.0.0.1 reaches the port
  but sends its own name as Host, so it is turned away (DNS rebinding);
- every request except ``GET /health`` (and ``HEAD /health``) must carry
  ``Authorization: Bearer <token>``, else 401. The token is compared in constant time.

Without the variable (``python backend/main.py`` from source, or a bare frozen
engine as in tests/quickstart) the engine serves as before, with no token and no
Host check, and says so once on stderr.

``AccessGuard`` is a plain ASGI middleware so it runs before FastAPI routing and
costs one dict lookup per request.
"""

import hmac
import json
import os
import sys

TOKEN_ENV = "PEFT_ENGINE_TOKEN"
OPEN_PATHS = {("GET", "/health"), ("HEAD", "/health")}


def token_from_env(environ=None):
    """The token the launcher gave, or None when the engine runs unguarded."""
    value = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
    return value or None


def allowed_hosts(port):
    return {f"127.0.0.1:{port}", f"localhost:{port}"}


class AccessGuard:
    def __init__(self, app, token, port):
        self.app = app
        self.expected = f"Bearer {token}".encode("latin-1")
        self.hosts = {h.encode("latin-1") for h in allowed_hosts(port)}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = auth = None
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.lower()
            elif name == b"authorization":
                auth = value
        if host not in self.hosts:
            shown = host.decode("latin-1", "replace") if host else "(none)"
            return await _reply(send, 403, f"Host {shown!r} is not this engine; use 127.0.0.1 or localhost with its port")
        if (scope["method"], scope["path"]) in OPEN_PATHS:
            return await self.app(scope, receive, send)
        if auth is None or not hmac.compare_digest(auth, self.expected):
            return await _reply(send, 401, "missing or wrong bearer token: send Authorization: Bearer <PEFT_ENGINE_TOKEN>",
                                [(b"www-authenticate", b"Bearer")])
        return await self.app(scope, receive, send)


async def _reply(send, status, detail, extra=()):
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": body})


def guard(app, port, environ=None):
    """Wrap ``app`` when a token was given; otherwise say on stderr that it is open."""
    token = token_from_env(environ)
    if token is None:
        sys.stderr.write(f"peft_engine: {TOKEN_ENV} is not set: serving without a token or Host check "
                         "(development mode; the app's launcher always sets it)\n")
        sys.stderr.flush()
        return app
    return AccessGuard(app, token, port)
