"""Shared helpers: start an engine (from source or frozen) as a real subprocess.

``Engine`` starts a command, waits for the one ``listening`` line on stdout, and
knows how to stop it with a signal and time the exit. Tests use ``httpx``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parent.parent
REPO = BACKEND.parent
SOURCE_CMD = [sys.executable, str(BACKEND / "main.py")]


def engine_env(**extra):
    env = dict(os.environ)
    for key in ("PEFT_ENGINE_VARIANT", "PEFT_ENGINE_VERSION", "PEFT_PROBE_FORCE_FAIL"):
        env.pop(key, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Engine:
    def __init__(self, cmd, env, start_timeout=60):
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd + ["--host", "127.0.0.1", "--port", "0"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        self.stderr_lines = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.line = self._read_line(start_timeout)
        self.startup_s = time.monotonic() - self.t0
        self.event = json.loads(self.line)
        self.url = f"http://127.0.0.1:{self.event['port']}"

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def _read_line(self, timeout):
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not box or not box[0]:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no listening line within {timeout}s; stderr:\n{''.join(self.stderr_lines)[-4000:]}")
        return box[0]

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Send ``sig``; return (seconds until exit, exit status, rest of stdout)."""
        t = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"engine still running {timeout}s after signal {sig}")
        elapsed = time.monotonic() - t
        return elapsed, self.proc.returncode, self.proc.stdout.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def source_engine(data_dir):
    engine = Engine(SOURCE_CMD, engine_env(PEFT_DATA_DIR=data_dir))
    yield engine
    engine.close()


def wait_for(predicate, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
