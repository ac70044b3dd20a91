"""What a frozen bundle knows about itself.

``backend/build-bundle`` bakes two generated modules into every bundle:
``peft_serve_build_info`` (``INFO``: name, version, variant, profile, app target,
accelerator, source date, git commit) and ``peft_serve_modules`` (``MODULES``: every
module the bundle must import; ``--self-check`` imports them all). From source there
are none: the defaults below apply. ``PEFT_ENGINE_VARIANT`` / ``PEFT_ENGINE_VERSION``
override variant and version in both cases (tests, development).
"""

import os

DEFAULTS = {
    "name": "peft-serve",
    "version": "0.0.0-dev",
    "variant": "dev",
    "profile": "source",
    "app": None,
    "factory": False,
    "source_date_epoch": None,
    "git_commit": None,
}


def load_info():
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


def baked_modules():
    """The bundle's module list, or None from source."""
    try:
        import peft_serve_modules
    except ImportError:
        return None
    return list(peft_serve_modules.MODULES)


BUILD_INFO = load_info()
