"""Build step: which modules must a bundle hold? (run by backend/build-bundle in the build venv)

    python -m peft_serve.collect PACKAGE... [--app MODULE:ATTR]

Walks every given top-level package (or plain module) on ``sys.path`` and imports
each of its modules (and the run-time modules uvicorn loads by name, cli.runtime_modules), so modules loaded lazily or by an ``importlib`` string are found
too. Prints one JSON object: ``modules`` (those that import here: the frozen bundle
must import every one of them, its ``--self-check`` proves it), ``skipped`` (those
that fail to import even here, with the error: usually an optional integration whose
library the app's requirements do not install; the bundle cannot do better than its
venv), ``loaded`` (every module with a file that importing them loaded, the app's
dependencies included: PyInstaller follows import statements, not modules that a
C extension or an ``importlib`` call loads, e.g. the ``<hash>__mypyc`` helper module
of mypyc-compiled wheels such as tomli) and ``distributions`` (every installed
distribution, for their metadata).
"""

import argparse
import importlib.metadata
import json
import os
import sys

from .cli import import_all, runtime_modules, walk_modules


def main(argv=None):
    parser = argparse.ArgumentParser(prog="peft_serve.collect")
    parser.add_argument("packages", nargs="+")
    args = parser.parse_args(argv)
    # Modules may write to stdout when imported: keep our one JSON line apart.
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    modules = sorted(set(walk_modules(args.packages)) | set(runtime_modules()))
    failed = import_all(modules)
    bad = {m["module"] for m in failed}
    loaded = sorted(name for name, module in list(sys.modules.items())
                    if name != "__main__" and _has_file(module))
    dists = sorted({(d.metadata["Name"] or "") for d in importlib.metadata.distributions()} - {""}, key=str.lower)
    out = json.dumps({"modules": [m for m in modules if m not in bad], "skipped": failed, "loaded": loaded,
                      "distributions": dists})
    os.write(real_stdout, (out + "\n").encode())
    return 0


def _has_file(module):
    spec = getattr(module, "__spec__", None)
    return spec is not None and spec.origin not in (None, "built-in", "frozen") and spec.has_location


if __name__ == "__main__":
    sys.stdout.flush()
    code = main()
    os._exit(code)  # modules imported above may have started threads; do not wait for them
