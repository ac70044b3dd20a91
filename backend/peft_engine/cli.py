"""Command line of ``peft_engine`` (frozen) and ``python backend/main.py`` (source).

    peft_engine [--host 127.0.0.1] [--port 0]   serve; prints the listening line
    peft_engine --probe                         check the variant's accelerator (JSON)
    peft_engine --version                       print version and variant
    peft_engine --self-check                    import every module the bundle needs (JSON)
    peft_engine --self-test [STEPS]             train a tiny LoRA here; one JSON line; exit 0/1/3 (selftest.py)
"""

import argparse
import importlib
import importlib.resources
import json
import os
import sys

from peft_serve.buildinfo import baked_modules

from .buildinfo import BUILD_INFO

# Modules that must import in every bundle; several are loaded by name at run time
# (uvicorn's protocol/loop/lifespan classes, anyio's backend), so PyInstaller only
# finds them through the spec's hidden imports. --self-check proves they are there.
CORE_MODULES = (
    "fastapi", "starlette", "pydantic", "pydantic_core", "anyio", "anyio._backends._asyncio",
    "h11", "uvicorn", "uvicorn.logging", "uvicorn.loops.auto", "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.auto", "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto", "uvicorn.lifespan.on", "uvicorn.lifespan.off",
    "peft_engine.api", "peft_engine.server", "peft_engine.jobs", "peft_engine.probe",
    "peft_serve.access", "peft_serve.lifeline", "peft_serve.health", "peft_serve.server",
)
FULL_MODULES = (
    "numpy", "torch", "safetensors", "tokenizers", "transformers", "peft", "accelerate",
    "transformers.models.auto.modeling_auto", "transformers.models.gpt2.modeling_gpt2",
    "transformers.models.llama.modeling_llama",
)

# Data files the full bundle reads at run time: (package, path inside it).
FULL_DATA_FILES = (
    ("huggingface_hub", "templates/modelcard_template.md"),  # peft's save_pretrained model card
)


def _ensure_std_streams():
    # A windowed (console=False) Windows executable may start with no stdout/stderr.
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))


def self_check():
    """Import the critical modules, plus in a frozen bundle every module build-bundle
    listed (all of peft_engine and peft_serve); check the full bundle's data files."""
    modules = list(CORE_MODULES)
    if BUILD_INFO["profile"] == "full":
        modules += FULL_MODULES
    modules += [m for m in baked_modules() or () if m not in modules]
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            missing.append({"module": name, "error": f"{type(exc).__name__}: {exc}"})
    if BUILD_INFO["profile"] == "full":
        for package, rel in FULL_DATA_FILES:
            try:
                found = importlib.resources.files(package).joinpath(rel).is_file()
            except Exception:
                found = False
            if not found:
                missing.append({"module": package, "error": f"data file {package}/{rel} is missing"})
    print(json.dumps({"event": "self-check", "ok": not missing, "profile": BUILD_INFO["profile"],
                      "checked": len(modules), "missing": missing}), flush=True)
    return 1 if missing else 0


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="peft_engine", description="PEFT Studio engine")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port; 0 (default) picks a free one")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--probe", action="store_true", help="test the variant's accelerator, print JSON, exit 0 if usable")
    mode.add_argument("--version", action="store_true", help="print version and variant and exit")
    mode.add_argument("--self-check", action="store_true", help="import every module this bundle needs, print JSON")
    mode.add_argument("--self-test", type=int, nargs="?", const=-1, metavar="STEPS",
                      help="train a tiny LoRA on a model made on the spot, print JSON; exit 0 done, 1 failed, "
                           "3 unavailable (no torch)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0..65535, not {args.port}")
    if args.self_test not in (None, -1) and not 1 <= args.self_test <= 1000:
        parser.error(f"--self-test STEPS must be 1..1000, not {args.self_test}")
    return args


def main(argv=None):
    _ensure_std_streams()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(f"peft_engine {BUILD_INFO['version']} ({BUILD_INFO['variant']}, {BUILD_INFO['profile']})", flush=True)
        return 0
    if args.probe:
        from .probe import main as probe_main
        return probe_main()
    if args.self_check:
        return self_check()
    if args.self_test is not None:
        from . import selftest
        return selftest.main(selftest.DEFAULT_STEPS if args.self_test == -1 else args.self_test)
    from peft_serve.server import exit_now

    from .server import serve
    try:
        status = serve(args.host, args.port, args.log_level)
    except OSError as exc:
        print(f"peft_engine: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 3
    # The server has shut down and jobs are cancelled. Skip the interpreter's teardown:
    # with torch loaded it takes ~1 s; the contract is to exit within one second of SIGTERM.
    exit_now(status)
