"""The frozen engine of a built bundle. Set PEFT_TEST_BUNDLE_DIR to the folder given
to ``build-bundle --out`` (it holds peft_engine/ and peft_engine.build.json);
``backend/run-tests`` builds the core bundle and sets it."""

import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import Engine, engine_env

BUNDLE_DIR = os.environ.get("PEFT_TEST_BUNDLE_DIR")
pytestmark = pytest.mark.skipif(not BUNDLE_DIR, reason="PEFT_TEST_BUNDLE_DIR is not set (no built bundle to test)")


@pytest.fixture(scope="module")
def bundle():
    root = Path(BUNDLE_DIR)
    info = json.loads((root / "peft_engine.build.json").read_text())
    exe = root / info["entry"]
    assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} is not an executable"
    return {"exe": str(exe), "info": info}


@pytest.fixture
def frozen(bundle, data_dir):
    engine = Engine([bundle["exe"]], engine_env(PEFT_DATA_DIR=data_dir))
    yield engine
    engine.close()


def run(bundle, *args, **env):
    return subprocess.run([bundle["exe"], *args], capture_output=True, text=True, timeout=300, env=engine_env(**env))


def test_listening_line_has_baked_identity(frozen, bundle):
    ev = frozen.event
    assert ev["event"] == "listening" and ev["host"] == "127.0.0.1" and ev["port"] > 0
    assert (ev["version"], ev["variant"]) == (bundle["info"]["version"], bundle["info"]["variant"])
    assert frozen.startup_s < 10, f"took {frozen.startup_s:.2f}s to listen"


def test_health_reports_baked_identity(frozen, bundle):
    body = httpx.get(frozen.url + "/health", timeout=10).json()
    assert body["status"] == "ok"
    assert (body["version"], body["variant"]) == (bundle["info"]["version"], bundle["info"]["variant"])
    if bundle["info"]["profile"] == "core":
        assert body["device"] == "none"


def test_system_says_frozen(frozen, bundle):
    body = httpx.get(frozen.url + "/system", timeout=30).json()
    assert body["frozen"] is True and body["profile"] == bundle["info"]["profile"]
    assert body["python"] == bundle["info"]["python"]


def test_core_bundle_answers_503_on_jobs(frozen, bundle):
    if bundle["info"]["profile"] != "core":
        pytest.skip("only the core profile lacks the ML stack")
    r = httpx.post(frozen.url + "/jobs", json={"model_path": "/x", "texts": ["a"]}, timeout=30)
    assert r.status_code == 503 and r.json()["missing_module"] == "torch"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_frozen_exits_within_one_second(frozen, sig):
    httpx.get(frozen.url + "/health", timeout=10)
    elapsed, status, rest = frozen.stop(sig)
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert status == 0 and rest == ""


def test_probe(bundle):
    proc = run(bundle, "--probe")
    report = json.loads(proc.stdout)
    assert report["variant"] == bundle["info"]["variant"] and report["frozen"] is True
    if report["accelerator"] == "cpu":
        assert proc.returncode == 0, report
        assert report["ok"] and report["matmul"]["max_abs_err"] <= 1e-3
    else:
        assert proc.returncode == (0 if report["ok"] else 1)
    if bundle["info"]["profile"] == "core":
        assert report["torch"] is None
    else:
        assert report["torch"]


def test_probe_force_fail(bundle):
    proc = run(bundle, "--probe", PEFT_PROBE_FORCE_FAIL="1")
    assert proc.returncode == 1 and "PEFT_PROBE_FORCE_FAIL" in json.loads(proc.stdout)["reason"]


def test_self_check(bundle):
    proc = run(bundle, "--self-check")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"], report["missing"]
    assert report["profile"] == bundle["info"]["profile"]


def test_version(bundle):
    proc = run(bundle, "--version")
    info = bundle["info"]
    assert proc.stdout.strip() == f"peft_engine {info['version']} ({info['variant']}, {info['profile']})"


def test_full_bundle_trains_a_tiny_model(frozen, bundle, tmp_path, data_dir):
    """The frozen ML stack really trains (hidden imports for the GPT-2 model code etc.)."""
    if bundle["info"]["profile"] != "full":
        pytest.skip("only a full bundle has the ML stack")
    for mod in ("torch", "transformers", "tokenizers"):
        pytest.importorskip(mod, reason=f"building the tiny test model needs {mod} in the test venv (--full)")
    from conftest import wait_for
    from tiny_model import TEXTS, make_tiny_model
    model = make_tiny_model(tmp_path / "tiny")
    body = {"model_path": str(model), "texts": TEXTS, "steps": 5, "lora_r": 4, "max_length": 32}
    job = httpx.post(frozen.url + "/jobs", json=body, timeout=300).json()
    done = wait_for(lambda: (lambda s: s if s["state"] in ("completed", "failed", "cancelled") else None)(
        httpx.get(f"{frozen.url}/jobs/{job['id']}", timeout=30).json()), 300, interval=0.2, what="the job")
    assert done["state"] == "completed", done
    assert (data_dir / "adapters" / job["id"] / "adapter_model.safetensors").is_file()
