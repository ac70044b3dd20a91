"""Run an ASGI app under uvicorn on a socket we bind ourselves (docs/CONTRACT.md §8).

Binding first (port 0 = the OS picks a free port) lets us announce the real port:
once uvicorn serves, exactly one JSON line goes to stdout, flushed:
``{"event":"listening","host":...,"port":N,"version":...,"variant":...}``.
All logging goes to stderr, so stdout carries that line and nothing else.

The app is wrapped, outermost first, in ``access.AccessGuard`` (token, Host, Origin;
only when ``PEFT_ENGINE_TOKEN`` is set) and ``health.HealthFallback``. Exiting when
the launcher dies is lifeline.py's (only when the launcher asked for it).

SIGTERM/SIGINT: uvicorn notices within 0.1 s; ``on_exit`` runs then (the engine
cancels its jobs and ends its SSE streams there), and uvicorn shuts down with a
short graceful timeout. Should the app's own shutdown hang, a watchdog leaves with
status 0 ``HARD_EXIT_S`` after the signal, so the process is gone within one second
whatever the app does. Exit status 0 (the signal is not re-raised as plain uvicorn does).
"""

import importlib.util
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time

import uvicorn

from . import lifeline
from .access import guard
from .health import HealthFallback

GRACEFUL_SHUTDOWN_S = 0.4  # ~0.1 s to notice + this + lifespan: well under 1 s
HARD_EXIT_S = 0.8  # after the signal, whatever the app's shutdown still does

class RedactToken(logging.Filter):
    """Hide the value of a ``peft_token`` query parameter in log lines (uvicorn logs every
    WebSocket handshake's path with its query string; the log is a file on disk)."""

    PATTERN = re.compile(r"(peft_token=)[^&\s\"']*")

    def filter(self, record):
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(self.PATTERN.sub(r"\1***", a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str) and "peft_token=" in record.msg:
            record.msg = self.PATTERN.sub(r"\1***", record.msg)
        return True


LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"redact": {"()": RedactToken}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr",
                            "filters": ["redact"]}},
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}


def bind_socket(host, port):
    """Bind and listen on host:port (0 = any free port); return the socket."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    if sys.platform != "win32":  # on Windows SO_REUSEADDR would let others steal the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(addr)
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def announce(line):
    """Write one line to stdout and flush it (the contract's listening event)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def websocket_impl():
    """uvicorn's WebSocket protocol: "auto" when websockets or wsproto is importable."""
    for module in ("websockets", "wsproto"):
        try:
            if importlib.util.find_spec(module) is not None:
                return "auto"
        except (ImportError, ValueError):
            pass
    return "none"


def exit_now(status):
    """Flush what can be flushed and leave without the interpreter's teardown.

    With torch (or any big library) loaded, teardown alone can take a second; the
    contract is to be gone within one second of SIGTERM. The streams may be pipes to
    a launcher that is gone (lifeline.py): a BrokenPipeError must not stop the exit.
    """
    for flush in (logging.shutdown, sys.stdout.flush, sys.stderr.flush):
        try:
            flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _hard_exit_later():
    time.sleep(HARD_EXIT_S)
    exit_now(0)


class ContractServer(uvicorn.Server):
    def __init__(self, config, listening, on_listening=None, on_exit=None):
        super().__init__(config)
        self.listening = listening
        self.on_listening = on_listening
        self.on_exit = on_exit
        self._watchdog = False

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            announce(json.dumps(self.listening, separators=(",", ":")))
            if self.on_listening is not None:
                self.on_listening()

    def handle_exit(self, sig, frame):
        # Same as uvicorn's, minus remembering the signal to re-raise it after
        # shutdown: we want a clean exit status 0 on SIGTERM/SIGINT.
        if not self._watchdog:
            self._watchdog = True
            threading.Thread(target=_hard_exit_later, name="sigterm-watchdog", daemon=True).start()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter):
        should_exit = await super().on_tick(counter)
        if should_exit and self.on_exit is not None:
            on_exit, self.on_exit = self.on_exit, None
            on_exit()  # in the event loop, not in the signal handler
        return should_exit


def serve(app, host="127.0.0.1", port=0, *, version, variant, name="peft-serve", log_level="info",
          on_listening=None, on_exit=None, extra=None):
    """Serve ``app`` until SIGTERM/SIGINT or the launcher's death; return the exit status.

    ``extra``: fields added to the listening line after host, port, version, variant.
    Raises OSError when it cannot listen.
    """
    lifeline.NAME = name
    lifeline.start()  # only watches the launcher when it asked (PEFT_PARENT_FD / PEFT_PARENT_PID)
    sock = bind_socket(host, port)
    real_host, real_port = sock.getsockname()[:2]
    listening = {"event": "listening", "host": real_host, "port": real_port, "version": version, "variant": variant}
    listening.update(extra or {})
    wrapped = guard(HealthFallback(app, {"status": "ok", "version": version, "variant": variant}), real_port,
                    name=name)
    config = uvicorn.Config(
        wrapped,
        log_config=LOG_CONFIG,
        log_level=log_level,
        loop="asyncio",
        http="h11",
        ws=websocket_impl(),
        lifespan="auto",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = ContractServer(config, listening, on_listening, on_exit)
    server.run(sockets=[sock])
    return 0
