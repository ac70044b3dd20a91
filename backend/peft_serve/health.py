"""``GET /health`` for apps that have none (docs/CONTRACT.md §8).

The launcher polls ``/health`` until it answers 200. ``HealthFallback`` passes
``GET``/``HEAD /health`` to the app first; only when the app answers 404 does it
answer itself, ``200 {"status":"ok","version":...,"variant":...}``. An app with its
own ``/health`` (our engine) is never shadowed, and no route table is inspected, so
any ASGI app works.
"""

import json


class HealthFallback:
    def __init__(self, app, body):
        self.app = app
        self.body = json.dumps(body).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/health" or scope["method"] not in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        state = {"ours": False}

        async def capture(message):
            if message["type"] == "http.response.start" and message["status"] == 404:
                state["ours"] = True
                return
            if state["ours"]:
                if message["type"] == "http.response.body" and not message.get("more_body", False):
                    await self._answer(scope, send)
                return
            await send(message)

        await self.app(scope, receive, capture)

    async def _answer(self, scope, send):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self.body})
