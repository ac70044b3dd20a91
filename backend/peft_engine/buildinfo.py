"""Version, variant and profile of this engine.

A frozen bundle carries a generated module, ``peft_serve_build_info``, written by
``backend/build-bundle`` (see ``backend/bundle.spec`` and peft_serve/buildinfo.py)
with a dict ``INFO``.
Running from source there is none: the engine is version ``0.0.0-dev``, variant
``dev``, profile ``source``. ``PEFT_ENGINE_VARIANT`` / ``PEFT_ENGINE_VERSION`` override
the variant / version in both cases (handy for tests and for dev mode).
"""

import os

DEFAULTS = {
    "version": "0.0.0-dev",
    "variant": "dev",
    "profile": "source",
    "source_date_epoch": None,
    "git_commit": None,
}


def _load():
    info = dict(DEFAULTS)
    try:
        import peft_serve_build_info  # generated at build time; absent from source

        info.update(peft_serve_build_info.INFO)
        info["baked"] = True
    except ImportError:
        info["baked"] = False
    if os.environ.get("PEFT_ENGINE_VARIANT"):
        info["variant"] = os.environ["PEFT_ENGINE_VARIANT"]
    if os.environ.get("PEFT_ENGINE_VERSION"):
        info["version"] = os.environ["PEFT_ENGINE_VERSION"]
    return info


BUILD_INFO = _load()


def accelerator_for_variant(variant):
    """The accelerator a variant id promises: cuda, mps, rocm or cpu.

    Variant ids look like ``linux-x86_64-cuda12.8`` or ``macos-arm64-metal``.
    """
    v = variant.lower()
    if "cuda" in v:
        return "cuda"
    if "metal" in v or "mps" in v:
        return "mps"
    if "rocm" in v:
        return "rocm"
    return "cpu"
