"""Exit when the launcher dies, however it dies (docs/CONTRACT.md §8: within 2 s, even kill -9).

Only when the launcher asks for it, so a bare start (tests/quickstart, the Rust
end-to-end test, ``python backend/main.py``) behaves exactly as before:

- ``PEFT_PARENT_FD=N``: the launcher holds the other end of a pipe on our fd N
  (Electron passes the engine's stdin, N=0, and never writes to it). When the
  launcher's process ends, the kernel closes its end and our read returns EOF at
  once. This is the main mechanism and works on Linux, macOS and Windows.
- ``PEFT_PARENT_PID=P``: the launcher's pid. A thread compares ``os.getppid()``
  with P every 0.25 s (a dead parent's children are re-parented, so it changes).

We deliberately do not use Linux's ``PR_SET_PDEATHSIG``: it fires when the *thread*
that spawned us exits, not the process, so an engine started from a short-lived
thread (a test harness, a worker pool) would be killed while its launcher lives.
The pipe and the getppid() poll cover every case it would (tests/test_lifeline.py).

On a lost parent we send ourselves SIGTERM (the normal graceful path: jobs
cancelled, exit within a second) and, should that hang, ``os._exit`` 1.5 s later.
"""

import os
import signal
import sys
import threading
import time

NAME = "peft-serve"  # the prefix of our one stderr line; the engine sets "peft_engine"
FD_ENV = "PEFT_PARENT_FD"
PID_ENV = "PEFT_PARENT_PID"
POLL_S = 0.25
HARD_EXIT_S = 1.5


def _lost(why):
    # First act, then tell: the launcher that died held our stdout/stderr pipes too,
    # so writing may raise BrokenPipeError, and that must not stop the exit.
    threading.Thread(target=_hard_exit_later, name="lifeline-hard-exit", daemon=True).start()
    try:
        sys.stderr.write(f"{NAME}: {why}; shutting down\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    if sys.platform == "win32":
        os._exit(0)  # no SIGTERM to ourselves on Windows; nothing there waits for a clean exit
    os.kill(os.getpid(), signal.SIGTERM)


def _hard_exit_later():
    time.sleep(HARD_EXIT_S)
    os._exit(1)


def _watch_fd(fd):
    try:
        while True:
            data = os.read(fd, 4096)
            if not data:
                break
    except OSError:
        pass
    _lost(f"the launcher's pipe (fd {fd}) closed")


def _watch_pid(pid):
    while os.getppid() == pid:
        time.sleep(POLL_S)
    _lost(f"the launcher (pid {pid}) is gone")


def start(environ=None):
    """Start the watchers the launcher asked for; return their names (for logs and tests)."""
    env = os.environ if environ is None else environ
    started = []
    fd = env.get(FD_ENV, "")
    if fd.isdigit():
        threading.Thread(target=_watch_fd, args=(int(fd),), name="lifeline-fd", daemon=True).start()
        started.append(f"fd {fd}")
    pid = env.get(PID_ENV, "")
    if pid.isdigit() and int(pid) > 1:
        pid = int(pid)
        if os.getppid() != pid:
            _lost(f"the launcher (pid {pid}) is not our parent")
        threading.Thread(target=_watch_pid, args=(pid,), name="lifeline-ppid", daemon=True).start()
        started.append(f"parent pid {pid}")
    return started
