"""``python -m peft_serve``; also the frozen bundle's entry (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
