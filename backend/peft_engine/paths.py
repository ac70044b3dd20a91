"""Where the engine writes user data (trained adapters).

``PEFT_DATA_DIR`` wins; otherwise the platform's per-user data folder:
Linux ``$XDG_DATA_HOME`` or ``~/.local/share`` / ``PEFT Studio``; macOS
``~/Library/Application Support/PEFT Studio``; Windows ``%APPDATA%\\PEFT Studio``.
"""

import os
import sys
from pathlib import Path

APP_DIR_NAME = "PEFT Studio"


def data_dir():
    override = os.environ.get("PEFT_DATA_DIR")
    if override:
        return Path(override).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = os.environ.get("APPDATA")
        return (Path(base) if base else home / "AppData" / "Roaming") / APP_DIR_NAME
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_DIR_NAME
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else home / ".local" / "share") / APP_DIR_NAME


def adapter_dir(job_id):
    return data_dir() / "adapters" / job_id
