"""``peft_engine --probe``: does this bundle's accelerator really work here?

Prints one JSON object on stdout and returns the exit status: 0 only when the
accelerator the variant promises (cuda, mps, rocm or cpu, from the variant id) is
usable and a 64x64 matrix product computed on it matches a pure-Python reference.
A ``cpu`` variant without torch (the ``core`` profile) does the product with numpy
when present, else pure Python, and passes with ``"torch": null``; a GPU variant
without torch fails with the import error as its reason.
``PEFT_PROBE_FORCE_FAIL=1`` makes the probe fail on purpose (to test fallbacks).
"""

import json
import os
import platform
import sys
import time

from . import mlstack
from .buildinfo import BUILD_INFO, accelerator_for_variant

N = 64
TOLERANCE = 1e-3


def _matrices(n=N):
    """Two n x n matrices of small integers (exact in float32/TF32 and in sums)."""
    state = 12345
    vals = []
    for _ in range(2 * n * n):
        state = (1103515245 * state + 12345) % (2 ** 31)
        vals.append(float(state % 7 - 3))
    a = [vals[i * n:(i + 1) * n] for i in range(n)]
    b = [vals[n * n + i * n:n * n + (i + 1) * n] for i in range(n)]
    return a, b


def _reference(a, b):
    bt = list(zip(*b))
    return [[sum(x * y for x, y in zip(row, col)) for col in bt] for row in a]


def _max_err(got, want):
    return max(abs(g - w) for grow, wrow in zip(got, want) for g, w in zip(grow, wrow))


def _matmul_without_torch(a, b):
    try:
        import numpy
    except ImportError:
        return _reference(a, b), "python"
    return numpy.array(a).dot(numpy.array(b)).tolist(), "numpy"


def run_probe():
    """Return (report dict, exit status)."""
    variant = BUILD_INFO["variant"]
    expected = accelerator_for_variant(variant)
    report = {
        "event": "probe",
        "ok": False,
        "version": BUILD_INFO["version"],
        "variant": variant,
        "profile": BUILD_INFO["profile"],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "torch": None,
        "accelerator": expected,
        "usable": False,
        "device": None,
        "devices": [],
        "matmul": None,
        "reason": None,
    }
    a, b = _matrices()
    want = _reference(a, b)
    try:
        torch = _import_torch()
        if torch is None:
            if expected != "cpu":
                raise ProbeFailure(f"variant {variant} needs torch for {expected}, but: {_torch_error()}")
            t0 = time.perf_counter()
            got, backend = _matmul_without_torch(a, b)
            report["device"] = "cpu"
        else:
            report["torch"] = torch.__version__
            report["devices"] = mlstack.list_devices(torch)
            device = _device_for(torch, expected)
            report["device"] = device
            t0 = time.perf_counter()
            ta = torch.tensor(a, dtype=torch.float32, device=device)
            tb = torch.tensor(b, dtype=torch.float32, device=device)
            got = (ta @ tb).cpu().tolist()
            backend = "torch"
        err = _max_err(got, want)
        report["matmul"] = {"n": N, "backend": backend, "max_abs_err": err,
                            "seconds": round(time.perf_counter() - t0, 6)}
        if err > TOLERANCE:
            raise ProbeFailure(f"the {N}x{N} product on {report['device']} is wrong (max error {err})")
        report["usable"] = True
        if os.environ.get("PEFT_PROBE_FORCE_FAIL") == "1":
            raise ProbeFailure("forced to fail by PEFT_PROBE_FORCE_FAIL=1")
        report["ok"] = True
    except ProbeFailure as exc:
        report["reason"] = str(exc)
    except Exception as exc:  # a driver/runtime error while using the device
        report["reason"] = f"{type(exc).__name__}: {exc}"
    return report, 0 if report["ok"] else 1


class ProbeFailure(Exception):
    pass


_torch_import_error = None


def _import_torch():
    global _torch_import_error
    try:
        import torch
        return torch
    except Exception as exc:
        _torch_import_error = f"{type(exc).__name__}: {exc}"
        return None


def _torch_error():
    return _torch_import_error or "torch is not importable"


def _device_for(torch, expected):
    if expected in ("cuda", "rocm"):
        if not torch.cuda.is_available():
            raise ProbeFailure(f"torch {torch.__version__} sees no {expected.upper()} device "
                               f"(cuda build {torch.version.cuda}, hip {getattr(torch.version, 'hip', None)})")
        is_hip = getattr(torch.version, "hip", None) is not None
        if expected == "rocm" and not is_hip:
            raise ProbeFailure("variant expects ROCm but this torch is not a ROCm build")
        if expected == "cuda" and is_hip:
            raise ProbeFailure("variant expects CUDA but this torch is a ROCm build")
        return "cuda:0"
    if expected == "mps":
        backend = getattr(torch.backends, "mps", None)
        if backend is None or not backend.is_available():
            raise ProbeFailure("Metal (MPS) is not available to torch on this machine")
        return "mps"
    return "cpu"


def main():
    report, status = run_probe()
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return status
