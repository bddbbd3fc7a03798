"""The ``qdht`` command: ``qdht demo``, ``qdht node``, ``qdht put/get/find-node``, ``qdht id``.

Only this package prints or configures logging; the library never does.
"""

from qdht.cli._main import main

__all__ = ["main"]
