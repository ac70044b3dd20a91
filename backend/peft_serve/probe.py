"""``--probe`` for any app: does the accelerator this bundle's variant promises work here?

One JSON object on stdout, exit 0 only when it does. The variant id decides
(``cuda`` -> cuda, ``rocm`` -> rocm, ``metal``/``mps`` -> mps, else cpu). A cpu
variant passes without torch; a GPU variant needs torch to see the device and
multiply two small matrices on it correctly. ``PEFT_PROBE_FORCE_FAIL=1`` fails on
purpose (to test the bootstrapper's fallback). Our engine has its own, richer probe
(peft_engine/probe.py) with the same event and fields.
"""

import json
import os
import platform
import sys

from .buildinfo import BUILD_INFO


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


def run_probe():
    variant = BUILD_INFO["variant"]
    expected = accelerator_for_variant(variant)
    report = {"event": "probe", "ok": False, "version": BUILD_INFO["version"], "variant": variant,
              "profile": BUILD_INFO["profile"], "python": platform.python_version(),
              "platform": platform.platform(), "frozen": bool(getattr(sys, "frozen", False)),
              "torch": None, "accelerator": expected, "usable": False, "device": None, "reason": None}
    try:
        if expected == "cpu":
            report["device"] = "cpu"
        else:
            try:
                import torch
            except Exception as exc:
                raise RuntimeError(f"variant {variant} needs torch for {expected}, but: {type(exc).__name__}: {exc}")
            report["torch"] = torch.__version__
            if expected == "mps":
                if not torch.backends.mps.is_available():
                    raise RuntimeError("Metal (MPS) is not available to torch on this machine")
                device = "mps"
            else:
                if not torch.cuda.is_available():
                    raise RuntimeError(f"torch {torch.__version__} sees no {expected.upper()} device")
                device = "cuda:0"
            a = torch.arange(16, dtype=torch.float32, device=device).reshape(4, 4)
            if (a @ a).cpu().tolist() != (a.cpu() @ a.cpu()).tolist():
                raise RuntimeError(f"a 4x4 product on {device} is wrong")
            report["device"] = device
        report["usable"] = True
        if os.environ.get("PEFT_PROBE_FORCE_FAIL") == "1":
            raise RuntimeError("forced to fail by PEFT_PROBE_FORCE_FAIL=1")
        report["ok"] = True
    except Exception as exc:
        report["reason"] = str(exc)
    return report, 0 if report["ok"] else 1


def main():
    report, status = run_probe()
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return status
