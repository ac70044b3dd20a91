"""``peft_serve``: run any ASGI app under PEFT Studio's engine contract (docs/CONTRACT.md §8).

    python -m peft_serve serve MODULE:ATTR [--app-dir DIR] [--factory] [--host H] [--port N]
    python -m peft_serve MODULE:ATTR --probe | --self-check | --version

It binds the port itself (0 = any free one) and prints the ``listening`` JSON line;
guards every route but ``/health`` with the launcher's token (``access.py``, also
for WebSockets), refuses foreign Host and Origin headers, adds ``/health`` when the
app answers 404 there (``health.py``), exits when the launcher dies (``lifeline.py``)
and within one second of SIGTERM (``server.py``). All of it is ASGI middleware and
process plumbing: the app is not changed. A frozen bundle made by
``backend/build-bundle --asgi MODULE:ATTR`` runs the same code with the target baked in.
"""

__version__ = "0.1.0"
