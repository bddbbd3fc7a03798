"""The model store: signed, chunked, content-addressed models (``protocol-spec/13-models.md``).

Sans-IO cores only: the node wires them into its services.
"""

# -- model store --
from qdht.models._format import (
    DTYPES,
    SafetensorsHeader,
    TensorInfo,
    canonical_header,
    load_arrays,
    read_header,
    read_header_from_path,
    save_arrays,
)

__all__ = [
    "DTYPES",
    "SafetensorsHeader",
    "TensorInfo",
    "canonical_header",
    "load_arrays",
    "read_header",
    "read_header_from_path",
    "save_arrays",
]
