"""Command line of ``peft-serve`` (``python -m peft_serve``) and of bundles built with ``--asgi``.

    python -m peft_serve serve MODULE:ATTR [--app-dir DIR] [--factory] [--host 127.0.0.1] [--port 0]
                                           [--log-level info]
    python -m peft_serve [MODULE:ATTR] --probe        the variant's accelerator works here (JSON, exit 0/1)
    python -m peft_serve [MODULE:ATTR] --self-check   import every module of the app (JSON, exit 0/1)
    python -m peft_serve [MODULE:ATTR] --version      print name, version, variant, profile

``MODULE:ATTR`` follows uvicorn: ATTR is an ASGI app, or with ``--factory`` a callable
returning one. ``--app-dir`` is put first on ``sys.path`` (default: the current
folder). A frozen bundle has the target baked in: ``<bundle>/<name> --host 127.0.0.1
--port 0`` serves it; ``serve`` and ``MODULE:ATTR`` may be left out.

Exit status: 0 served and stopped by SIGTERM/SIGINT (or the check passed), 1 a check
failed or the app cannot be loaded, 2 bad usage, 3 cannot listen.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys

from . import __version__
from .buildinfo import BUILD_INFO, baked_modules

# Loaded by name at run time by uvicorn (and anyio, and the WebSocket libraries when the
# app installs them); a bundle without them starts and then fails on the first
# connection, so --self-check imports them too.
RUNTIME_MODULES = (
    "uvicorn", "uvicorn.logging", "uvicorn.loops.auto", "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.auto", "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto", "uvicorn.lifespan.on", "uvicorn.lifespan.off", "h11",
    "peft_serve.access", "peft_serve.health", "peft_serve.lifeline", "peft_serve.server", "peft_serve.probe",
)
OPTIONAL_RUNTIME_MODULES = {  # installed package -> modules then needed at run time
    "anyio": ("anyio._backends._asyncio",),
    "websockets": ("websockets", "uvicorn.protocols.websockets.websockets_impl"),
    "wsproto": ("wsproto", "uvicorn.protocols.websockets.wsproto_impl"),
}


def runtime_modules():
    """RUNTIME_MODULES plus those of OPTIONAL_RUNTIME_MODULES whose package is installed here."""
    found = list(RUNTIME_MODULES)
    for package, modules in OPTIONAL_RUNTIME_MODULES.items():
        try:
            present = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            present = False
        if present:
            found += modules
    return found


class AppError(Exception):
    pass


def ensure_std_streams():
    # A windowed (console=False) Windows executable may start with no stdout/stderr.
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))


def add_app_dir(app_dir):
    path = os.path.abspath(app_dir or ".")
    if path not in sys.path:
        sys.path.insert(0, path)


def load_app(target, factory=False):
    """Import ``MODULE:ATTR`` (ATTR may be dotted) and return the ASGI app."""
    module_name, sep, attr = (target or "").partition(":")
    if not sep or not module_name or not attr:
        raise AppError(f"the app must be given as MODULE:ATTR (like uvicorn), not {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppError(f"cannot import the app's module {module_name!r}: {exc}. "
                           "Give --app-dir with the folder that holds it, or install the app") from exc
        raise AppError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    app = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise AppError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        app = app()
    if not callable(app):
        raise AppError(f"{target} is {type(app).__name__}, not an ASGI app (with --factory, give the function)")
    return app


def walk_modules(packages):
    """Every module of the given top-level packages (or plain modules), sorted."""
    import pkgutil

    found = set()
    for name in packages:
        found.add(name)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for info in pkgutil.walk_packages(list(spec.submodule_search_locations), prefix=name + ".",
                                          onerror=lambda _name: None):
            found.add(info.name)
        found |= _files_below(name, spec.submodule_search_locations)
    return sorted(m for m in found if m.rsplit(".", 1)[-1] != "__main__")


def _files_below(name, locations):
    """Every module file below a package's folders by name, namespace packages (folders without
    __init__.py, e.g. prefect.server.concurrency) included: pkgutil does not enter those."""
    found = set()
    for location in locations:
        for dirpath, dirnames, filenames in os.walk(location):
            dirnames[:] = sorted(d for d in dirnames if d.isidentifier())
            rel = os.path.relpath(dirpath, location)
            parts = [name] + ([] if rel == "." else rel.split(os.sep))
            for filename in filenames:
                stem, ext = os.path.splitext(filename)
                if ext == ".py" and stem.isidentifier():
                    found.add(".".join(parts if stem == "__init__" else parts + [stem]))
    return found


def import_all(modules):
    """Import each module; return [{"module", "error"}] for those that fail."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # SystemExit from a module is a failure too, not our exit
            if isinstance(exc, KeyboardInterrupt):
                raise
            missing.append({"module": name, "error": f"{type(exc).__name__}: {exc}"})
    return missing


def self_check(target, factory=False):
    """Import every module the bundle lists (from source: every module of the app's
    top-level package), then load the app itself. One JSON line; 0 when all import."""
    modules = baked_modules()
    if modules is None:
        top = (target or "").partition(":")[0].split(".")[0]
        modules = runtime_modules() + (walk_modules([top]) if top else [])
    missing = import_all(modules)
    if target:
        try:
            load_app(target, factory)
        except Exception as exc:
            missing.append({"module": target, "error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"event": "self-check", "ok": not missing, "app": target, "profile": BUILD_INFO["profile"],
                      "checked": len(modules), "missing": missing}), flush=True)
    return 1 if missing else 0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="peft-serve", description="Serve an ASGI app under PEFT Studio's engine "
                                     "contract: free port, listening line, token, Host/Origin checks, lifeline")
    parser.add_argument("app", nargs="?", default=BUILD_INFO.get("app"),
                        help="MODULE:ATTR of the ASGI app (baked into a frozen bundle)")
    parser.add_argument("--app-dir", default=None, help="folder put first on sys.path to import the app (default .)")
    parser.add_argument("--factory", action="store_true", default=bool(BUILD_INFO.get("factory")),
                        help="ATTR is a function returning the app")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 (default) picks a free one")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--probe", action="store_true", help="test the variant's accelerator, print JSON, exit 0 if usable")
    mode.add_argument("--version", action="store_true", help="print name, version, variant and profile, and exit")
    mode.add_argument("--self-check", action="store_true", help="import every module of the app; JSON; exit 1 if any fails")
    if argv and argv[0] == "serve":
        argv = argv[1:]
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, not {args.port}")
    if not (args.version or args.probe) and not args.app:
        parser.error("name the app: serve MODULE:ATTR (e.g. myapp.main:app)")
    return args


def main(argv=None):
    ensure_std_streams()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    name = BUILD_INFO["name"]
    if args.version:
        print(f"{name} {BUILD_INFO['version']} ({BUILD_INFO['variant']}, {BUILD_INFO['profile']}; "
              f"app {args.app or '-'}; peft-serve {__version__})", flush=True)
        return 0
    if not getattr(sys, "frozen", False):
        add_app_dir(args.app_dir)
    if args.probe:
        from .probe import main as probe_main
        return probe_main()
    if args.self_check:
        return self_check(args.app, args.factory)
    try:
        app = load_app(args.app, args.factory)
    except AppError as exc:
        print(f"{name}: {exc}", file=sys.stderr, flush=True)
        return 1
    from .server import exit_now, serve
    try:
        status = serve(app, args.host, args.port, version=BUILD_INFO["version"], variant=BUILD_INFO["variant"],
                       name=name, log_level=args.log_level, extra={"app": args.app})
    except OSError as exc:
        print(f"{name}: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 3
    exit_now(status)
