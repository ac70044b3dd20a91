"""PEFT Studio's backend engine (``peft_engine``).

A FastAPI + uvicorn server that reports the machine it runs on and runs LoRA
fine-tuning jobs. Heavy ML libraries (torch, transformers, peft) are imported
lazily, only by the code that needs them, so the same engine runs in the ``core``
bundle (no ML stack) and in the ``full`` bundles.
"""

from .buildinfo import BUILD_INFO

__version__ = BUILD_INFO["version"]
