"""build-bundle --asgi --app-dir on an app's own code: every module, even one loaded only by an
importlib string, is in the frozen bundle, and the bundle serves under the contract (~20 s warm).

Runs where bundles are built (``PEFT_TEST_BUNDLE_DIR`` set, as backend/run-tests does). The app
is tests/fixtures/plainapp, a bare ASGI app (no FastAPI, no anyio, no /health); its
requirements file is unhashed and empty, so the build adds uvicorn and PyInstaller itself.
"""

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from conftest import BACKEND, REPO, Engine, engine_env

pytestmark = pytest.mark.skipif(not os.environ.get("PEFT_TEST_BUNDLE_DIR"),
                                reason="PEFT_TEST_BUNDLE_DIR is not set (this run builds no bundles)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("appbundle")
    reqs = root / "requirements.txt"
    reqs.write_text("# a bare ASGI app needs nothing; build-bundle adds uvicorn and PyInstaller\n")
    variant = f"{sys.platform}-test-cpu"
    proc = subprocess.run([sys.executable, str(BACKEND / "build-bundle"), "--variant", variant, "--out", str(root / "out"),
                           "--asgi", "plainapp.main:app", "--app-dir", str(BACKEND / "tests" / "fixtures" / "plainapp"),
                           "--requirements", str(reqs), "--version", "3.1.4"],
                          capture_output=True, text=True, timeout=900, cwd=str(REPO), env=engine_env())
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root / "out", proc.stderr


def test_build_log_and_summary(built):
    out, log = built
    assert "requirements are not hashed:" in log
    summary = json.loads((out / "plainapp.build.json").read_text())
    assert summary["app"] == "plainapp.main:app" and summary["requirements_hashed"] is False
    assert summary["entry"].startswith("plainapp/plainapp") and summary["skipped_modules"] == []


def test_frozen_app_has_the_module_loaded_by_name_and_serves_with_the_token(built):
    out, _ = built
    exe = str(out / "plainapp" / ("plainapp.exe" if os.name == "nt" else "plainapp"))
    check = subprocess.run([exe, "--self-check"], capture_output=True, text=True, timeout=120)
    report = json.loads(check.stdout)
    assert check.returncode == 0 and report["ok"] and report["checked"] >= 20
    engine = Engine([exe], engine_env(PEFT_ENGINE_TOKEN="tok"))
    try:
        assert engine.event["version"] == "3.1.4" and engine.event["app"] == "plainapp.main:app"
        assert httpx.get(engine.url + "/health", timeout=10).json()["version"] == "3.1.4"
        assert httpx.get(engine.url + "/lazy", timeout=10).status_code == 401
        r = httpx.get(engine.url + "/lazy", headers={"Authorization": "Bearer tok"}, timeout=10)
        assert r.status_code == 200 and r.text == "found by name"
        elapsed, status, _ = engine.stop(signal.SIGTERM)
        assert status == 0 and elapsed < 1.0
    finally:
        engine.close()
