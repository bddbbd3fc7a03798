"""``python -m qdht_interop.pynode``: ``qdht node`` under the harness contract.

Reads ``QDHT_LISTEN``, ``QDHT_BOOTSTRAP`` (space-separated contact URIs),
``QDHT_DIFFICULTY`` and ``QDHT_MIX`` (``1``: run the mix role) from the
environment and runs ``qdht node`` with the matching flags (no status
lines), so its first stdout line is its contact URI; ``QDHT_MODEL_FILE``
becomes ``--publish-model`` (when the models extra is installed).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from qdht_interop._model import MODEL_NAME


def argv(environ: dict[str, str]) -> list[str]:
    """The ``qdht`` command line for the contract variables in ``environ``."""
    args = [sys.executable, "-m", "qdht.cli", "node", "--status-interval", "0"]
    args += ["--listen", environ.get("QDHT_LISTEN") or "udp://127.0.0.1:0"]
    if environ.get("QDHT_DIFFICULTY"):
        args += ["--difficulty", environ["QDHT_DIFFICULTY"]]
    if environ.get("QDHT_MIX") == "1":
        args.append("--mix")
    for uri in (environ.get("QDHT_BOOTSTRAP") or "").split():
        args += ["--bootstrap", uri]
    if environ.get("QDHT_MODEL_FILE") and importlib.util.find_spec("numpy") is not None:
        # The model store needs the models extra; without it the target has none.
        args += ["--publish-model", environ["QDHT_MODEL_FILE"], "--model-name", MODEL_NAME]
    return args


def main() -> None:
    args = argv(dict(os.environ))
    os.execv(args[0], args)


if __name__ == "__main__":
    main()
