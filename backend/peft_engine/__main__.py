"""``python -m peft_engine``: same as ``backend/main.py`` and the frozen executable."""

import sys

from .cli import main

sys.exit(main())
