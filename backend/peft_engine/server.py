"""Serve the engine's API through the runtime wrapper ``peft_serve`` (docs/CONTRACT.md §8).

The engine is an ordinary app of ``peft_serve``: binding, the listening line, the
token and Host/Origin checks, the lifeline and the one-second SIGTERM exit are all
the wrapper's (peft_serve/server.py, access.py, lifeline.py). The engine adds two
hooks: after the listening line it looks the torch device up in the background (so
the first /health is fast); on SIGTERM/SIGINT it cancels every job (the training
loop checks its flag each step) and ends the SSE streams, so the graceful shutdown
has nothing left to wait for.
"""

import threading

from peft_serve.server import serve as serve_app

from . import mlstack
from .api import create_app
from .buildinfo import BUILD_INFO


def serve(host, port, log_level="info"):
    app = create_app()
    status = serve_app(
        app, host, port, version=BUILD_INFO["version"], variant=BUILD_INFO["variant"], name="peft_engine",
        log_level=log_level,
        on_listening=lambda: threading.Thread(target=mlstack.device, name="device-warmup", daemon=True).start(),
        on_exit=app.state.jobs.shutdown,
    )
    app.state.jobs.wait_idle(timeout=0.3)
    return status
