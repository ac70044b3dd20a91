"""The engine's self-test (INTERFACES §5): ``POST /self-test``, ``GET /self-test/<id>``
and ``peft_engine --self-test``, from source and in built bundles.

Without torch (the core dev venv, or a shadow ``torch`` package that fails to import
where torch is installed) the self-test must say it is unavailable. With torch,
transformers and peft importable (``backend/run-tests --full``) it must really train:
the loss goes down, steps per second and the device are reported. Bundles:
``PEFT_TEST_BUNDLE_DIR`` (run-tests builds the core one) and
``PEFT_TEST_FULL_BUNDLE_DIR`` (a full CPU bundle from ``backend/build-bundle
--profile full``; skipped, saying so, when none is built).
"""

import importlib.util
import json
import math
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import BACKEND, SOURCE_CMD, Engine, engine_env, wait_for

sys.path.insert(0, str(BACKEND))
from peft_engine import selftest  # noqa: E402

UNAVAILABLE = "This engine cannot train: it was built without PyTorch"
HAVE_ML = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft"))
needs_ml = pytest.mark.skipif(not HAVE_ML, reason="the training self-test needs torch, transformers and peft "
                                                  "(not in the core dev venv; run backend/run-tests --full)")
STATUS_KEYS = {"state", "device", "device_name", "steps_done", "steps", "steps_per_second", "losses", "message"}


@pytest.fixture
def no_torch_env(tmp_path, data_dir):
    """An environment whose ``import torch`` fails, as in a core bundle."""
    shadow = tmp_path / "shadow" / "torch"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    return engine_env(PEFT_DATA_DIR=data_dir, PYTHONPATH=str(shadow.parent))


def run_cli(cmd, *args, env, timeout=600):
    proc = subprocess.run([*cmd, "--self-test", *args], capture_output=True, text=True, timeout=timeout, env=env)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"expected one JSON line on stdout, got {proc.stdout!r}; stderr:\n{proc.stderr[-3000:]}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


def assert_trained(report, steps):
    """A real run: every step's loss, finite, clearly going down; device and speed reported."""
    assert STATUS_KEYS <= set(report), report
    assert report["state"] == "done", report
    assert report["steps"] == report["steps_done"] == steps == len(report["losses"])
    losses = report["losses"]
    assert all(isinstance(x, float) and math.isfinite(x) and x > 0 for x in losses), losses
    # A 96-token vocabulary starts near ln(96) = 4.56; the counting sequences are learnt fast.
    assert 3.5 < losses[0] < 6.0, losses
    assert losses[-1] < losses[0] * 0.75, f"the loss did not go down by a quarter: {losses}"
    assert report["steps_per_second"] > 0
    assert report["train_seconds"] > 0 and report["setup_seconds"] >= 0
    assert math.isclose(report["steps_per_second"], steps / report["train_seconds"], rel_tol=0.01)
    assert report["device"] in ("cpu", "mps") or report["device"].startswith("cuda:"), report["device"]
    assert isinstance(report["device_name"], str) and report["device_name"].strip()
    assert report["torch"]
    assert "steps/s" in report["message"] and report["device"] in report["message"]


def assert_unavailable(report):
    assert STATUS_KEYS <= set(report), report
    assert report["state"] == "unavailable", report
    assert report["message"] == UNAVAILABLE
    assert report["steps_done"] == 0 and report["losses"] == [] and report["steps_per_second"] == 0
    assert report["device"] == "none"


def poll(url, test_id, headers=None, timeout=300):
    seen = []

    def check():
        r = httpx.get(f"{url}/self-test/{test_id}", headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        snap = r.json()
        seen.append(snap)
        return snap if snap["state"] != "running" else None
    final = wait_for(check, timeout, interval=0.05, what=f"self-test {test_id} to finish")
    return final, seen


# --- without torch: every venv runs these ---------------------------------------------------

def test_cli_without_torch_is_unavailable(no_torch_env):
    status, report, _ = run_cli(SOURCE_CMD, env=no_torch_env, timeout=60)
    assert_unavailable(report)
    assert status == 3
    assert report["steps"] == selftest.DEFAULT_STEPS


def test_api_without_torch_is_unavailable(no_torch_env):
    engine = Engine(SOURCE_CMD, no_torch_env)
    try:
        r = httpx.post(engine.url + "/self-test", json={"steps": 5}, timeout=30)
        assert r.status_code == 200 and set(r.json()) == {"id"}, r.text
        final, _ = poll(engine.url, r.json()["id"], timeout=60)
        assert_unavailable(final)
        assert final["steps"] == 5 and final["id"] == r.json()["id"]
    finally:
        engine.close()


@pytest.mark.parametrize("arg", ["0", "1001", "x"])
def test_cli_rejects_bad_steps(arg):
    proc = subprocess.run([*SOURCE_CMD, "--self-test", arg], capture_output=True, text=True, timeout=60,
                          env=engine_env())
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--self-test" in proc.stderr


def test_self_test_needs_the_token(data_dir, no_torch_env):
    token = secrets.token_urlsafe(32)
    engine = Engine(SOURCE_CMD, dict(no_torch_env, PEFT_ENGINE_TOKEN=token))
    try:
        for method, path in (("POST", "/self-test"), ("GET", "/self-test/abc")):
            r = httpx.request(method, engine.url + path, timeout=10)
            assert r.status_code == 401, (method, path, r.text)
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(engine.url + "/self-test", headers=auth, timeout=30)  # no body: the default steps
        assert r.status_code == 200, r.text
        final, _ = poll(engine.url, r.json()["id"], headers=auth, timeout=60)
        assert final["state"] == "unavailable" and final["steps"] == selftest.DEFAULT_STEPS
    finally:
        engine.close()


def test_unknown_id_and_bad_bodies(source_engine):
    r = httpx.get(source_engine.url + "/self-test/nope", timeout=10)
    assert r.status_code == 404 and "nope" in r.json()["detail"]
    for body in ({"steps": 0}, {"steps": 1001}, {"steps": "many"}):
        r = httpx.post(source_engine.url + "/self-test", json=body, timeout=10)
        assert r.status_code == 422, (body, r.text)


def test_manager_keeps_one_running_and_forgets_old_ones(monkeypatch):
    """One at a time; finished ones beyond KEEP are forgotten (training replaced by a stub)."""
    monkeypatch.setattr(selftest, "_run", lambda test, log: test.update(state=selftest.DONE))
    manager = selftest.SelfTestManager()
    blocker = selftest.SelfTest(3)  # a running one
    manager.tests[blocker.id] = blocker
    assert manager.start(5) is blocker
    blocker.update(state=selftest.DONE)
    for _ in range(selftest.KEEP + 5):
        test = manager.start(1)
        assert test.finished.wait(120), "a self-test did not finish"
    assert len(manager.tests) <= selftest.KEEP + 1
    assert manager.get(test.id) is test and manager.get(blocker.id) is None


def test_cpu_name_is_never_empty():
    assert selftest.cpu_name().strip()


# --- with torch: backend/run-tests --full ---------------------------------------------------

@needs_ml
def test_cli_trains_and_the_loss_goes_down(data_dir):
    status, report, stderr = run_cli(SOURCE_CMD, "10", env=engine_env(PEFT_DATA_DIR=data_dir))
    assert_trained(report, 10)
    assert status == 0
    assert "step 10/10" in stderr
    print(f"\nself-test from source: {report['device']} ({report['device_name']}), "
          f"{report['steps_per_second']} steps/s, losses {report['losses']}")


@needs_ml
def test_api_trains_and_reports_progress(source_engine):
    r = httpx.post(source_engine.url + "/self-test", json={"steps": 8}, timeout=30)
    assert r.status_code == 200, r.text
    test_id = r.json()["id"]
    final, seen = poll(source_engine.url, test_id)
    assert_trained(final, 8)
    done = [s["steps_done"] for s in seen]
    assert done == sorted(done), "steps_done went backwards"
    for snap in seen:
        assert len(snap["losses"]) == snap["steps_done"]
    # the device is the one /health reports
    assert httpx.get(source_engine.url + "/health", timeout=30).json()["device"] == final["device"]


@needs_ml
def test_in_process_run_is_seeded():
    """Two runs on the same device give the same losses (fixed seed, fixed batch)."""
    a = selftest.run(selftest.SelfTest(4))
    b = selftest.run(selftest.SelfTest(4))
    assert a["state"] == b["state"] == "done", (a, b)
    if a["device"] == "cpu":
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-4)
    else:  # GPU kernels need not be bit-identical
        assert a["losses"] == pytest.approx(b["losses"], rel=1e-2)


@needs_ml
def test_in_process_shadowed_peft_is_unavailable(monkeypatch):
    """torch present but peft missing: unavailable, naming peft (a broken full bundle)."""
    from peft_engine import mlstack

    def missing_peft():
        raise mlstack.MissingModule("peft", "No module named 'peft'")
    monkeypatch.setattr(mlstack, "ml_stack", missing_peft)
    report = selftest.run(selftest.SelfTest(3))
    assert report["state"] == "unavailable" and "peft" in report["message"], report


# --- built bundles ---------------------------------------------------------------------------

def bundle_exe(root):
    root = Path(root)
    info = json.loads((root / "peft_engine.build.json").read_text())
    exe = root / info["entry"]
    assert exe.is_file() and os.access(exe, os.X_OK), f"{exe} is not an executable"
    return exe, info


def full_bundle_dir():
    """PEFT_TEST_FULL_BUNDLE_DIR, else PEFT_TEST_BUNDLE_DIR when that one is a full bundle."""
    if os.environ.get("PEFT_TEST_FULL_BUNDLE_DIR"):
        return os.environ["PEFT_TEST_FULL_BUNDLE_DIR"]
    core = os.environ.get("PEFT_TEST_BUNDLE_DIR")
    if core and json.loads((Path(core) / "peft_engine.build.json").read_text())["profile"] == "full":
        return core
    return None


def test_core_bundle_self_test_is_unavailable(data_dir):
    root = os.environ.get("PEFT_TEST_BUNDLE_DIR")
    if not root:
        pytest.skip("PEFT_TEST_BUNDLE_DIR is not set (no built bundle; backend/run-tests builds the core one)")
    exe, info = bundle_exe(root)
    if info["profile"] != "core":
        pytest.skip(f"{root} is a {info['profile']} bundle; the full one is tested below")
    status, report, _ = run_cli([str(exe)], env=engine_env(PEFT_DATA_DIR=data_dir), timeout=60)
    assert_unavailable(report)
    assert status == 3
    engine = Engine([str(exe)], engine_env(PEFT_DATA_DIR=data_dir))
    try:
        r = httpx.post(engine.url + "/self-test", json={"steps": 4}, timeout=30)
        final, _ = poll(engine.url, r.json()["id"], timeout=60)
        assert_unavailable(final)
    finally:
        engine.close()


def test_full_bundle_self_test_trains(data_dir):
    root = full_bundle_dir()
    if not root:
        pytest.skip("no full CPU bundle built: set PEFT_TEST_FULL_BUNDLE_DIR to the --out folder of "
                    "backend/build-bundle --variant linux-x86_64-cpu --profile full (a ~5 GB build)")
    exe, info = bundle_exe(root)
    assert info["profile"] == "full", f"{root} is a {info['profile']} bundle, not a full one"
    status, report, _ = run_cli([str(exe)], "10", env=engine_env(PEFT_DATA_DIR=data_dir))
    assert_trained(report, 10)
    assert status == 0
    engine = Engine([str(exe)], engine_env(PEFT_DATA_DIR=data_dir))
    try:
        r = httpx.post(engine.url + "/self-test", json={"steps": 8}, timeout=60)
        final, _ = poll(engine.url, r.json()["id"])
        assert_trained(final, 8)
    finally:
        engine.close()
    print(f"\nself-test in the frozen full bundle: {report['device']} ({report['device_name']}), "
          f"{report['steps_per_second']} steps/s, losses {report['losses']}")
