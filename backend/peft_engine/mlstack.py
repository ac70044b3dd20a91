"""Lazy access to the ML stack (torch, transformers, peft) and the device.

Nothing here imports torch at module import time. ``ml_stack()`` imports the three
libraries once and caches either the modules or the failure; a missing library is
reported as ``MissingModule`` naming it, which the API turns into a 503.
``device()`` answers the torch device string ("cuda:0", "mps", "cpu") or "none"
when torch cannot be imported, computed once and cached.
"""

import importlib
import importlib.util
import os
import platform
import sys
import threading

ML_MODULES = ("torch", "transformers", "peft")

_lock = threading.Lock()
_stack = None  # dict of modules, or a MissingModule
_device = None
_device_lock = threading.Lock()


class MissingModule(Exception):
    """A library of the ML stack cannot be imported in this bundle."""

    def __init__(self, module, reason):
        super().__init__(reason)
        self.module = module
        self.reason = reason

    def detail(self):
        return {
            "detail": f"the ML stack is not in this bundle: {self.reason}",
            "missing_module": self.module,
        }


def _import(name):
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # ModuleNotFoundError names the module it missed
        missing = getattr(exc, "name", None) or name
        raise MissingModule(missing, str(exc) or f"No module named '{missing}'") from exc
    except Exception as exc:  # a broken install (e.g. a missing shared library)
        raise MissingModule(name, f"importing {name} failed: {exc!r}") from exc


def ml_stack():
    """Return {"torch": ..., "transformers": ..., "peft": ...} or raise MissingModule."""
    global _stack
    with _lock:
        if _stack is None:
            # The engine trains on local folders only: never let the libraries reach a hub.
            for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
                os.environ.setdefault(key, "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            try:
                _stack = {name: _import(name) for name in ML_MODULES}
            except MissingModule as exc:
                _stack = exc
        if isinstance(_stack, MissingModule):
            raise _stack
        return _stack


def torch_or_none():
    """The torch module, or None when it is absent (checked cheaply first)."""
    if importlib.util.find_spec("torch") is None:
        return None
    try:
        return importlib.import_module("torch")
    except Exception:
        return None


def _mps_available(torch):
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device():
    """Best torch device string, cached: "cuda:0", "mps", "cpu", or "none"."""
    global _device
    with _device_lock:
        if _device is None:
            torch = torch_or_none()
            if torch is None:
                _device = "none"
            elif torch.cuda.is_available():
                _device = "cuda:0"
            elif _mps_available(torch):
                _device = "mps"
            else:
                _device = "cpu"
        return _device


def system_info(build_info):
    """What /system reports: Python, platform, torch and its devices, the bundle."""
    info = {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "system": platform.system(),
        "machine": platform.machine(),
        "frozen": bool(getattr(sys, "frozen", False)),
        "executable": sys.executable,
        "version": build_info["version"],
        "variant": build_info["variant"],
        "profile": build_info["profile"],
        "torch": None,
        "torch_available": False,
        "cuda_available": False,
        "cuda_version": None,
        "hip_version": None,
        "mps_available": False,
        "device": device(),
        "devices": [],
    }
    torch = torch_or_none()
    if torch is None:
        return info
    info["torch"] = torch.__version__
    info["torch_available"] = True
    info["cuda_version"] = getattr(torch.version, "cuda", None)
    info["hip_version"] = getattr(torch.version, "hip", None)
    info["cuda_available"] = bool(torch.cuda.is_available())
    info["mps_available"] = _mps_available(torch)
    info["devices"] = list_devices(torch)
    return info


def list_devices(torch):
    """[{"index", "name", "total_memory", "type"}] for every CUDA/ROCm GPU, or MPS."""
    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({
                "index": i,
                "type": "rocm" if getattr(torch.version, "hip", None) else "cuda",
                "name": props.name,
                "total_memory": int(props.total_memory),
            })
    elif _mps_available(torch):
        total = None
        try:
            total = int(torch.mps.recommended_max_memory())
        except Exception:
            pass
        devices.append({"index": 0, "type": "mps", "name": "Apple GPU (MPS)", "total_memory": total})
    return devices
