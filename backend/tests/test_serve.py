"""peft_serve, the runtime wrapper for any ASGI app (docs/BACKEND.md, "Serving any ASGI app").

The guard and the /health fallback are driven as plain ASGI here (HTTP and WebSocket
scopes, as uvicorn builds them); the command line runs for real as a subprocess
against tests/fixtures/plainapp, a bare ASGI app without FastAPI or /health.
"""

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys

import httpx
import pytest

from conftest import BACKEND, Engine, engine_env

sys.path.insert(0, str(BACKEND))
from peft_serve import cli  # noqa: E402
from peft_serve.access import AccessGuard, allowed_origins  # noqa: E402
from peft_serve.health import HealthFallback  # noqa: E402

FIXTURE = BACKEND / "tests" / "fixtures" / "plainapp"
SERVE = [sys.executable, "-m", "peft_serve", "serve"]
PORT = 5555
TOKEN = "s3cret-token"


def run_asgi(app, scope, incoming=()):
    """Call an ASGI app once; return the messages it sent and the scope the inner app saw."""
    sent = []
    queue = list(incoming) or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(path="/data", method="GET", headers=(), query=b""):
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "headers": [(b"host", f"127.0.0.1:{PORT}".encode())] + list(headers)}


def ws_scope(path="/ws", headers=(), subprotocols=(), query=b""):
    hdrs = [(b"host", f"localhost:{PORT}".encode())] + list(headers)
    if subprotocols:
        hdrs.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
    return {"type": "websocket", "path": path, "query_string": query, "headers": hdrs,
            "subprotocols": list(subprotocols), "extensions": {"websocket.http.response": {}}}


class Recorder:
    """An inner app that records the scope it got and answers 200 / accepts the WebSocket."""

    def __init__(self, subprotocol=None):
        self.scope = None
        self.subprotocol = subprotocol

    async def __call__(self, scope, receive, send):
        self.scope = scope
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept", "subprotocol": self.subprotocol})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})


def guarded(inner, origins=None):
    return AccessGuard(inner, TOKEN, PORT, origins if origins is not None else allowed_origins(PORT, {}))


def status_of(sent):
    return sent[0].get("status") if sent[0]["type"].endswith("response.start") else sent[0]["type"]


def test_http_needs_the_bearer_token():
    inner = Recorder()
    assert status_of(run_asgi(guarded(inner), http_scope())) == 401
    assert status_of(run_asgi(guarded(inner), http_scope(headers=[(b"authorization", b"Bearer nope")]))) == 401
    assert inner.scope is None
    assert status_of(run_asgi(guarded(inner), http_scope(headers=[(b"authorization", f"Bearer {TOKEN}".encode())]))) == 200


def test_health_and_cors_preflight_pass_without_token():
    inner = Recorder()
    assert status_of(run_asgi(guarded(inner), http_scope("/health"))) == 200
    pre = http_scope(method="OPTIONS", headers=[(b"access-control-request-method", b"POST")])
    assert status_of(run_asgi(guarded(inner), pre)) == 200
    assert status_of(run_asgi(guarded(inner), http_scope(method="OPTIONS"))) == 401  # not a preflight


def test_query_token_is_accepted_and_removed():
    inner = Recorder()
    sent = run_asgi(guarded(inner), http_scope(query=f"a=1&peft_token={TOKEN}&b=2".encode()))
    assert status_of(sent) == 200
    assert inner.scope["query_string"] == b"a=1&b=2"


def test_websocket_subprotocol_token_is_stripped_and_echoed():
    inner = Recorder()
    sent = run_asgi(guarded(inner), ws_scope(subprotocols=[f"peft-token.{TOKEN}"]),
                    [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.accept", "subprotocol": f"peft-token.{TOKEN}"}]
    assert inner.scope["subprotocols"] == []
    assert all(k != b"sec-websocket-protocol" for k, _ in inner.scope["headers"])


def test_websocket_app_subprotocol_is_kept():
    inner = Recorder(subprotocol="graphql-ws")
    sent = run_asgi(guarded(inner), ws_scope(subprotocols=["graphql-ws", f"peft-token.{TOKEN}"]),
                    [{"type": "websocket.connect"}])
    assert sent == [{"type": "websocket.accept", "subprotocol": "graphql-ws"}]
    assert inner.scope["subprotocols"] == ["graphql-ws"]
    assert (b"sec-websocket-protocol", b"graphql-ws") in inner.scope["headers"]


@pytest.mark.parametrize("subprotocols,query", [((), b""), (("peft-token.wrong",), b""), ((), b"peft_token=wrong")])
def test_websocket_without_the_token_is_refused_before_it_opens(subprotocols, query):
    inner = Recorder()
    sent = run_asgi(guarded(inner), ws_scope(subprotocols=subprotocols, query=query), [{"type": "websocket.connect"}])
    assert sent[0] == {"type": "websocket.http.response.start", "status": 401, "headers": sent[0]["headers"]}
    assert b"peft-token." in sent[1]["body"] and inner.scope is None


def test_websocket_query_token_and_no_extension_closes():
    inner = Recorder()
    sent = run_asgi(guarded(inner), ws_scope(query=f"peft_token={TOKEN}".encode()), [{"type": "websocket.connect"}])
    assert sent[0]["type"] == "websocket.accept" and inner.scope["query_string"] == b""
    scope = ws_scope()
    scope["extensions"] = {}
    assert run_asgi(guarded(Recorder()), scope, [{"type": "websocket.connect"}])[0]["type"] == "websocket.close"


def test_foreign_host_and_origin_are_refused_even_with_the_token():
    auth = (b"authorization", f"Bearer {TOKEN}".encode())
    for scope in (
        dict(http_scope(headers=[auth]), headers=[(b"host", b"evil.example"), auth]),
        http_scope(headers=[auth, (b"origin", b"https://evil.example")]),
        ws_scope(subprotocols=[f"peft-token.{TOKEN}"], headers=[(b"origin", b"https://evil.example")]),
        http_scope("/health", headers=[(b"origin", b"null")]),
    ):
        sent = run_asgi(guarded(Recorder()), scope, [{"type": "websocket.connect"}] if scope["type"] == "websocket" else ())
        assert sent[0]["status"] == 403, scope


def test_own_and_listed_origins_are_accepted():
    origins = allowed_origins(PORT, {"PEFT_ALLOWED_ORIGINS": "file://, app://studio"})
    assert origins == {f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}", "file://", "app://studio"}
    for origin in (f"http://localhost:{PORT}", "file://", "app://studio"):
        scope = ws_scope(subprotocols=[f"peft-token.{TOKEN}"], headers=[(b"origin", origin.encode())])
        assert run_asgi(guarded(Recorder(), origins), scope, [{"type": "websocket.connect"}])[0]["type"] == \
            "websocket.accept", origin


def test_health_fallback_answers_only_when_the_app_has_none():
    body = {"status": "ok", "version": "9", "variant": "v"}
    sent = run_asgi(HealthFallback(Recorder(), body), http_scope("/health"))
    assert sent[1]["body"] == b"inner"  # the app's own /health wins

    async def not_found(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nope"})
    sent = run_asgi(HealthFallback(not_found, body), http_scope("/health"))
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"]) == body
    assert run_asgi(HealthFallback(not_found, body), http_scope("/other"))[0]["status"] == 404


# ---- the command line, for real ----

@pytest.fixture
def served():
    token = secrets.token_urlsafe(16)
    engine = Engine(SERVE + ["plainapp.main:app", "--app-dir", str(FIXTURE)], engine_env(PEFT_ENGINE_TOKEN=token, PYTHONPATH=BACKEND))
    yield engine, token
    engine.close()


def test_serve_an_unknown_app_under_the_contract(served):
    engine, token = served
    ev = engine.event
    assert ev["event"] == "listening" and ev["host"] == "127.0.0.1" and ev["port"] > 0
    assert ev["app"] == "plainapp.main:app" and ev["version"] == "0.0.0-dev"
    health = httpx.get(engine.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert httpx.get(engine.url + "/echo", timeout=10).status_code == 401
    r = httpx.get(engine.url + f"/echo?x=1&peft_token={token}", timeout=10)
    assert r.status_code == 200 and r.json()["query"] == "x=1"
    r = httpx.get(engine.url + "/lazy", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.text == "found by name"
    r = httpx.get(engine.url + "/echo", headers={"Authorization": f"Bearer {token}", "Host": "evil.example"})
    assert r.status_code == 403
    elapsed, status, rest = engine.stop(signal.SIGTERM)
    assert status == 0 and elapsed < 1.0 and rest == ""


def test_factory_and_app_dir():
    engine = Engine(SERVE + ["plainapp.main:make_app", "--factory", "--app-dir", str(FIXTURE)], engine_env(PYTHONPATH=BACKEND))
    try:
        assert httpx.get(engine.url + "/echo", timeout=10).status_code == 200  # no token set: open, as from source
    finally:
        engine.close()


def run_cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "peft_serve", *args], capture_output=True, text=True, timeout=60,
                          env=engine_env(**env), cwd=str(BACKEND))


def test_self_check_imports_every_module_of_the_app():
    proc = run_cli("plainapp.main:app", "--app-dir", str(FIXTURE), "--self-check")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"] and report["missing"] == []
    assert report["checked"] >= len(cli.RUNTIME_MODULES) + 4  # plainapp, .main, .plugins, .plugins.by_name


def test_self_check_names_what_is_missing():
    proc = run_cli("plainapp.main:nope", "--app-dir", str(FIXTURE), "--self-check")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and [m["module"] for m in report["missing"]] == ["plainapp.main:nope"]
    assert cli.import_all(["json", "no_such_module_xyz"])[0]["module"] == "no_such_module_xyz"


def test_bad_targets_fail_clearly():
    proc = run_cli("serve", "no_such_pkg.main:app")
    assert proc.returncode == 1 and "cannot import the app's module 'no_such_pkg.main'" in proc.stderr
    proc = run_cli("serve", "plainapp.main", "--app-dir", str(FIXTURE))
    assert proc.returncode == 1 and "MODULE:ATTR" in proc.stderr
    proc = run_cli("serve")
    assert proc.returncode == 2 and "name the app" in proc.stderr


def test_version_and_probe():
    proc = run_cli("plainapp.main:app", "--version", PEFT_ENGINE_VERSION="2.0.0")
    assert proc.returncode == 0 and proc.stdout.startswith("peft-serve 2.0.0 (dev, source; app plainapp.main:app")
    proc = run_cli("--probe", PEFT_ENGINE_VARIANT="linux-x86_64-cpu")
    assert proc.returncode == 0 and json.loads(proc.stdout)["ok"] is True
    proc = run_cli("--probe", PEFT_ENGINE_VARIANT="linux-x86_64-cpu", PEFT_PROBE_FORCE_FAIL="1")
    assert proc.returncode == 1 and "PEFT_PROBE_FORCE_FAIL" in json.loads(proc.stdout)["reason"]


def test_collect_finds_modules_loaded_only_by_name():
    env = engine_env(PYTHONPATH=os.pathsep.join([str(FIXTURE), str(BACKEND)]))
    proc = subprocess.run([sys.executable, "-m", "peft_serve.collect", "plainapp"], capture_output=True, text=True,
                          env=env, timeout=60)
    found = json.loads(proc.stdout)
    assert "plainapp.plugins.by_name" in found["modules"] and found["skipped"] == []
    assert "plainapp.storage.backends.memory" in found["modules"]  # below namespace packages too
    assert "plainapp.plugins.by_name" in found["loaded"] and "json" in found["loaded"]
    assert "fastapi" in found["distributions"]


def test_sigterm_exits_within_one_second_even_when_the_apps_shutdown_hangs():
    engine = Engine(SERVE + ["plainapp.main:slow_shutdown_app", "--app-dir", str(FIXTURE)], engine_env(PYTHONPATH=BACKEND))
    try:
        assert httpx.get(engine.url + "/echo", timeout=10).status_code == 200
        elapsed, status, _ = engine.stop(signal.SIGTERM)
        assert status == 0 and elapsed < 1.0, elapsed
    finally:
        engine.close()


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 of a launcher is a POSIX test")
def test_an_unknown_app_exits_within_2s_of_its_launchers_kill_9():
    import time

    from test_lifeline import LAUNCHER, alive
    from conftest import wait_for

    cmd = SERVE + ["plainapp.main:app", "--app-dir", str(FIXTURE)]
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, "fd+pid"] + cmd, stdout=subprocess.PIPE, text=True,
                                env=engine_env(PYTHONPATH=BACKEND, PEFT_ENGINE_TOKEN="t"))
    info = json.loads(launcher.stdout.readline())
    try:
        assert httpx.get(f"http://127.0.0.1:{info['port']}/health", timeout=10).status_code == 200
        t = time.monotonic()
        launcher.kill()
        launcher.wait()
        wait_for(lambda: not alive(info["pid"]), 2.0, what="the served app to exit")
        assert time.monotonic() - t < 2.0
    finally:
        if alive(info["pid"]):
            os.kill(info["pid"], signal.SIGKILL)


def test_a_query_token_never_reaches_the_log():
    import logging

    from peft_serve.server import RedactToken
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                               ("127.0.0.1:5", "/ws?a=1&peft_token=s3cret&b=2"), None)
    assert RedactToken().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?a=1&peft_token=***&b=2" [accepted]'
