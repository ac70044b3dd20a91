"""Run the API under uvicorn on a socket we bind ourselves.

Binding first (port 0 = the OS picks a free port) lets us announce the real port:
once uvicorn serves, exactly one JSON line goes to stdout, flushed:
``{"event":"listening","host":...,"port":N,"version":...,"variant":...}``.
All logging goes to stderr, so stdout carries that line and nothing else.

Access (token, Host check) is in access.py; exiting when the launcher dies, in
lifeline.py. Both are inactive unless the launcher sets their variables.

SIGTERM/SIGINT: uvicorn notices within 0.1 s; we then cancel every job (the
training loop checks its flag each step), end the SSE streams, and let uvicorn
shut down with a short graceful timeout. The process exits with status 0 (we do not
re-raise the signal the way plain uvicorn does).
"""

import json
import signal
import socket
import sys
import threading

import uvicorn

from . import lifeline, mlstack
from .access import guard
from .api import create_app
from .buildinfo import BUILD_INFO

GRACEFUL_SHUTDOWN_S = 0.4  # ~0.1 s to notice + this + lifespan: well under 1 s

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}},
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


class EngineServer(uvicorn.Server):
    def __init__(self, config, manager, host, port):
        super().__init__(config)
        self.manager = manager
        self.announce_host = host
        self.announce_port = port

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            announce(json.dumps({
                "event": "listening",
                "host": self.announce_host,
                "port": self.announce_port,
                "version": BUILD_INFO["version"],
                "variant": BUILD_INFO["variant"],
            }, separators=(",", ":")))
            # Look the device up in the background so the first /health is fast.
            threading.Thread(target=mlstack.device, name="device-warmup", daemon=True).start()

    def handle_exit(self, sig, frame):
        # Same as uvicorn's, minus remembering the signal to re-raise it after
        # shutdown: we want a clean exit status 0 on SIGTERM/SIGINT.
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter):
        should_exit = await super().on_tick(counter)
        if should_exit:
            self.manager.shutdown()  # cancel jobs, end SSE streams (event loop, not signal context)
        return should_exit


def serve(host, port, log_level="info"):
    lifeline.start()  # only watches the launcher when it asked (PEFT_PARENT_FD / PEFT_PARENT_PID)
    sock = bind_socket(host, port)
    real_host, real_port = sock.getsockname()[:2]
    app = create_app()
    config = uvicorn.Config(
        guard(app, real_port),  # token + Host check when PEFT_ENGINE_TOKEN is set (access.py)
        log_config=LOG_CONFIG,
        log_level=log_level,
        loop="asyncio",
        http="h11",
        ws="none",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = EngineServer(config, app.state.jobs, real_host, real_port)
    server.run(sockets=[sock])
    app.state.jobs.wait_idle(timeout=0.3)
    return 0
