"""Dev-mode and PyInstaller entry point: ``python backend/main.py --port 0``.

The same file is the script PyInstaller freezes for the engine (backend/bundle.spec via build-bundle).
"""

import os
import sys

if not getattr(sys, "frozen", False):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peft_engine.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
