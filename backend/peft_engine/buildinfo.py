"""Version, variant and profile of this engine.

The engine is an app served by ``peft_serve``, so it reads the same build facts: the
generated module ``peft_serve_build_info`` that ``backend/build-bundle`` bakes into a
frozen bundle (see ``peft_serve/buildinfo.py``). Running from source there is none:
version ``0.0.0-dev``, variant ``dev``, profile ``source``. ``PEFT_ENGINE_VARIANT`` /
``PEFT_ENGINE_VERSION`` override the variant / version in both cases.
"""

from peft_serve.buildinfo import BUILD_INFO
from peft_serve.probe import accelerator_for_variant

__all__ = ["BUILD_INFO", "accelerator_for_variant"]
