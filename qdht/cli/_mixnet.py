"""The mixnet options shared by ``qdht node`` and the client commands.

``--mixnet FILE`` names a JSON file of the network's mixnet parameters (the
same at every node, like the puzzle difficulty)::

    {"directory_keys": ["<ML-DSA-65 public key, hex>", ...], "directory_threshold": 1,
     "hops": 3, "user_payload_size": 2048, "epoch_period": 1200, "mean_delay": 0.05}

Only ``directory_keys`` is required; the rest default as ``MixnetConfig``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

from qdht.cli._common import usage_error
from qdht.errors import ConfigError

__all__ = ["NETWORK_FIELDS", "add_mixnet_option", "mixnet_config"]

#: The keys a ``--mixnet`` file may hold.
NETWORK_FIELDS: Final = (
    "directory_keys",
    "directory_threshold",
    "hops",
    "user_payload_size",
    "epoch_period",
    "mean_delay",
)


def add_mixnet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mixnet",
        type=Path,
        metavar="FILE",
        help="the network's mixnet parameters (JSON: directory_keys as hex, "
        "directory_threshold, hops, user_payload_size, epoch_period, mean_delay)",
    )


def mixnet_config(path: Path | None, **roles: Any) -> Any:
    """A ``qdht.mixnet.MixnetConfig`` from the ``--mixnet`` file and this node's ``roles``."""
    from qdht.mixnet import MixnetConfig  # only when the mixnet is on

    fields: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise usage_error(f"--mixnet {path}: {exc}") from None
        if not isinstance(loaded, dict) or set(loaded) - set(NETWORK_FIELDS):
            raise usage_error(f"--mixnet {path}: a JSON object with keys {list(NETWORK_FIELDS)}")
        fields = dict(loaded)
        try:
            fields["directory_keys"] = tuple(
                bytes.fromhex(k) for k in fields.get("directory_keys", [])
            )
        except (TypeError, ValueError):
            raise usage_error(f"--mixnet {path}: directory_keys must be hex strings") from None
    try:
        return MixnetConfig(**fields, **roles)
    except (ConfigError, TypeError) as exc:
        raise usage_error(f"--mixnet: {exc}") from None
