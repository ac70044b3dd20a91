"""docs/CONTRACT.md §8 engine access: a fresh token guards everything but /health; foreign Host is refused."""

import secrets

import httpx
import pytest

from conftest import SOURCE_CMD, Engine, engine_env, wait_for


@pytest.fixture
def token():
    return secrets.token_urlsafe(32)


@pytest.fixture
def guarded(data_dir, token):
    engine = Engine(SOURCE_CMD, engine_env(PEFT_DATA_DIR=data_dir, PEFT_ENGINE_TOKEN=token))
    yield engine
    engine.close()


def test_health_needs_no_token(guarded):
    r = httpx.get(guarded.url + "/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"


@pytest.mark.parametrize("method,path", [("GET", "/system"), ("GET", "/jobs"), ("POST", "/jobs"),
                                         ("DELETE", "/jobs/abc"), ("GET", "/nope"), ("POST", "/health")])
def test_everything_else_needs_the_token(guarded, method, path):
    r = httpx.request(method, guarded.url + path, timeout=10)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "PEFT_ENGINE_TOKEN" in r.json()["detail"]


def test_wrong_token_is_refused(guarded, token):
    for value in (f"Bearer {token[:-1]}", f"Bearer {token}x", token, f"Basic {token}", "Bearer", f"bearer {token}"):
        r = httpx.get(guarded.url + "/system", headers={"Authorization": value}, timeout=10)
        assert r.status_code == 401, value


def test_right_token_is_served(guarded, token):
    r = httpx.get(guarded.url + "/system", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200 and r.json()["frozen"] is False


def test_foreign_host_is_refused_even_for_health(guarded, token):
    port = guarded.event["port"]
    auth = {"Authorization": f"Bearer {token}"}
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", "",
                 f"localhost.evil.example:{port}"):
        for path in ("/health", "/system"):
            r = httpx.get(guarded.url + path, headers={"Host": host, **auth}, timeout=10)
            assert r.status_code == 403, (host, path, r.status_code)
            assert "is not this engine" in r.json()["detail"]


def test_own_hosts_are_accepted(guarded, token):
    port = guarded.event["port"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        r = httpx.get(guarded.url + "/system", headers={"Host": host, "Authorization": f"Bearer {token}"},
                      timeout=30)
        assert r.status_code == 200, host


def test_without_token_serves_as_before_and_says_so(source_engine):
    assert httpx.get(source_engine.url + "/system", timeout=30).status_code == 200
    assert httpx.get(source_engine.url + "/health", headers={"Host": "evil.example"}, timeout=10).status_code == 200
    wait_for(lambda: any("PEFT_ENGINE_TOKEN is not set" in line for line in source_engine.stderr_lines),
             5, what="the unguarded notice on stderr")
