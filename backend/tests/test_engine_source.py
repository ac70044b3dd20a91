"""The engine run from source (``python backend/main.py``) as a real subprocess."""

import json
import os
import platform
import signal
import subprocess
import sys

import httpx
import pytest

from conftest import SOURCE_CMD, Engine, engine_env

JOB_CALLS = [
    ("POST", "/jobs", {"model_path": "/nonexistent", "texts": ["hello"]}),
    ("GET", "/jobs", None),
    ("GET", "/jobs/abc", None),
    ("GET", "/jobs/abc/events", None),
    ("DELETE", "/jobs/abc", None),
]


def test_listening_line_and_free_port(source_engine):
    ev = source_engine.event
    assert source_engine.line.endswith("\n") and source_engine.line.count("\n") == 1
    assert set(ev) == {"event", "host", "port", "version", "variant"}
    assert ev["event"] == "listening" and ev["host"] == "127.0.0.1"
    assert isinstance(ev["port"], int) and 0 < ev["port"] < 65536
    assert (ev["version"], ev["variant"]) == ("0.0.0-dev", "dev")
    # the announced port is the one really served
    assert httpx.get(source_engine.url + "/health", timeout=10).status_code == 200


def test_health(source_engine):
    r = httpx.get(source_engine.url + "/health", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["version"] == "0.0.0-dev" and body["variant"] == "dev"
    try:
        import torch  # noqa: F401
        assert body["device"] in ("cpu", "mps") or body["device"].startswith("cuda:")
    except ImportError:
        assert body["device"] == "none"


def test_system(source_engine):
    body = httpx.get(source_engine.url + "/system", timeout=30).json()
    assert body["python"] == platform.python_version()
    assert body["frozen"] is False and body["variant"] == "dev" and body["profile"] == "source"
    for key in ("platform", "torch", "torch_available", "cuda_available", "mps_available", "devices", "device"):
        assert key in body
    assert body["torch_available"] == (body["torch"] is not None)


def test_env_overrides_variant_and_version(data_dir):
    engine = Engine(SOURCE_CMD, engine_env(PEFT_DATA_DIR=data_dir, PEFT_ENGINE_VARIANT="linux-x86_64-cpu",
                                           PEFT_ENGINE_VERSION="9.8.7"))
    try:
        assert (engine.event["variant"], engine.event["version"]) == ("linux-x86_64-cpu", "9.8.7")
        body = httpx.get(engine.url + "/health", timeout=10).json()
        assert (body["variant"], body["version"]) == ("linux-x86_64-cpu", "9.8.7")
    finally:
        engine.close()


@pytest.fixture
def engine_without_torch(tmp_path, data_dir):
    """An engine whose ``import torch`` fails, even where torch is installed."""
    shadow = tmp_path / "shadow" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = engine_env(PEFT_DATA_DIR=data_dir, PYTHONPATH=str(shadow.parent))
    engine = Engine(SOURCE_CMD, env)
    yield engine
    engine.close()


@pytest.mark.parametrize("method,path,body", JOB_CALLS)
def test_job_endpoints_503_without_torch(engine_without_torch, method, path, body):
    r = httpx.request(method, engine_without_torch.url + path, json=body, timeout=30)
    assert r.status_code == 503
    assert r.json() == {"detail": "the ML stack is not in this bundle: No module named 'torch'",
                        "missing_module": "torch"}


def test_rest_works_without_torch(engine_without_torch):
    assert httpx.get(engine_without_torch.url + "/health", timeout=10).json()["device"] == "none"
    assert httpx.get(engine_without_torch.url + "/system", timeout=10).json()["torch"] is None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_within_one_second(source_engine, sig):
    httpx.get(source_engine.url + "/health", timeout=10)
    elapsed, status, rest = source_engine.stop(sig)
    assert elapsed < 1.0, f"took {elapsed:.2f}s to exit"
    assert status == 0
    assert rest == "", f"stdout must carry only the listening line, got {rest!r}"


def test_sigterm_with_open_connection(source_engine):
    """A client holding a keep-alive connection must not delay the exit."""
    with httpx.Client(timeout=10) as client:
        client.get(source_engine.url + "/health")
        elapsed, status, _ = source_engine.stop()
    assert elapsed < 1.0 and status == 0


def test_busy_port_fails_clearly(source_engine, data_dir):
    port = source_engine.event["port"]
    proc = subprocess.run(SOURCE_CMD + ["--port", str(port)], capture_output=True, text=True, timeout=60,
                          env=engine_env(PEFT_DATA_DIR=data_dir))
    assert proc.returncode == 3
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and proc.stdout == ""


def run_cli(*args, **env):
    return subprocess.run(SOURCE_CMD + list(args), capture_output=True, text=True, timeout=300, env=engine_env(**env))


def test_version_flag():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "peft_engine 0.0.0-dev (dev, source)"


def test_bad_port_is_a_usage_error():
    proc = run_cli("--port", "70000")
    assert proc.returncode == 2 and "--port" in proc.stderr


def test_probe_cpu_variant_passes():
    proc = run_cli("--probe", PEFT_ENGINE_VARIANT="linux-x86_64-cpu")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report
    assert report["ok"] and report["usable"] and report["accelerator"] == "cpu"
    assert report["matmul"]["n"] == 64 and report["matmul"]["max_abs_err"] <= 1e-3
    assert len(proc.stdout.strip().splitlines()) == 1


def test_probe_force_fail():
    proc = run_cli("--probe", PEFT_ENGINE_VARIANT="linux-x86_64-cpu", PEFT_PROBE_FORCE_FAIL="1")
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["ok"] is False
    assert "PEFT_PROBE_FORCE_FAIL" in report["reason"]


def test_probe_gpu_variant_status_matches_report():
    proc = run_cli("--probe", PEFT_ENGINE_VARIANT="linux-x86_64-cuda12.8")
    report = json.loads(proc.stdout)
    assert report["accelerator"] == "cuda"
    assert proc.returncode == (0 if report["ok"] else 1)
    if report["torch"] is None:
        assert proc.returncode == 1 and "needs torch" in report["reason"]


def test_self_check_source():
    proc = run_cli("--self-check")
    report = json.loads(proc.stdout)
    assert proc.returncode == 0 and report["ok"] and report["missing"] == []
