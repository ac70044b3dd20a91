"""The engine exits by itself within 2 s when its launcher dies, even by kill -9 (docs/CONTRACT.md §8),
and only when the launcher asked for it: a bare start behaves as before."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from conftest import SOURCE_CMD, Engine, engine_env, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 of a launcher is a POSIX test")

# A stand-in launcher: starts the engine as its child the way electron/engine.js does
# (stdin a pipe it never writes; variables as asked; stdout and stderr pipes it holds, so
# the engine's writes hit a broken pipe once it is gone), prints the engine's pid and port, waits.
LAUNCHER = textwrap.dedent("""
    import json, os, subprocess, sys
    mode = sys.argv[1]
    env = dict(os.environ)
    if "fd" in mode:
        env["PEFT_PARENT_FD"] = "0"
    if "pid" in mode:
        env["PEFT_PARENT_PID"] = str(os.getpid())
    stdin = subprocess.PIPE if "fd" in mode else subprocess.DEVNULL
    proc = subprocess.Popen(sys.argv[2:] + ["--host", "127.0.0.1", "--port", "0"], env=env,
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = json.loads(proc.stdout.readline())["port"]
    print(json.dumps({"pid": proc.pid, "port": port}), flush=True)
    proc.wait()
""")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return sys.platform.startswith("linux") is False


def start_launcher(mode, data_dir):
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, mode] + SOURCE_CMD,
                                stdout=subprocess.PIPE, text=True, env=engine_env(PEFT_DATA_DIR=data_dir))
    info = json.loads(launcher.stdout.readline())
    assert httpx.get(f"http://127.0.0.1:{info['port']}/health", timeout=10).status_code == 200
    return launcher, info["pid"]


@pytest.mark.parametrize("mode", ["fd", "pid", "fd+pid"])
def test_engine_exits_within_2s_of_launcher_kill_9(mode, data_dir):
    launcher, engine_pid = start_launcher(mode, data_dir)
    try:
        t = time.monotonic()
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        wait_for(lambda: not alive(engine_pid), 2.0, what=f"engine {engine_pid} to exit ({mode})")
        elapsed = time.monotonic() - t
        print(f"{mode}: engine gone {elapsed:.2f}s after kill -9 of its launcher")
        assert elapsed < 2.0
    finally:
        if alive(engine_pid):
            os.kill(engine_pid, signal.SIGKILL)


def test_bare_engine_outlives_its_launcher_as_before(data_dir):
    launcher, engine_pid = start_launcher("bare", data_dir)
    try:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        time.sleep(2.5)
        assert alive(engine_pid), "an engine started without PEFT_PARENT_* must not watch its parent"
    finally:
        os.kill(engine_pid, signal.SIGKILL)


def test_engine_started_from_a_finished_thread_keeps_running(data_dir):
    """The launcher process lives on after the thread that spawned the engine ends
    (why PR_SET_PDEATHSIG is not used): the engine must stay."""
    box = {}

    def spawn():
        box["engine"] = Engine(SOURCE_CMD, engine_env(PEFT_DATA_DIR=data_dir, PEFT_PARENT_PID=os.getpid()))

    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()
    engine = box["engine"]
    try:
        time.sleep(1.5)
        assert engine.proc.poll() is None
        assert httpx.get(engine.url + "/health", timeout=10).status_code == 200
    finally:
        engine.close()


def test_wrong_parent_pid_exits_at_once(data_dir):
    proc = subprocess.Popen(SOURCE_CMD + ["--port", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=engine_env(PEFT_DATA_DIR=data_dir, PEFT_PARENT_PID=os.getpid() + 100000))
    try:
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert "is not our parent" in err
