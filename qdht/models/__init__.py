"""The model store: signed, chunked, content-addressed models (``protocol-spec/13-models.md``).

Sans-IO cores only: the node wires them into its services.
"""

# -- model store --
from qdht.models._chunks import (
    DEFAULT_CHUNK_SIZE,
    ChunkSink,
    chunk_arrays,
    chunk_file,
    merkle_root,
)
from qdht.models._fetch import (
    ChunkRequest,
    FetchComplete,
    FetchEvent,
    FetchLimits,
    FetchStuck,
    HolderDropped,
    ModelFetch,
    Penalty,
    Progress,
)
from qdht.models._format import (
    NUMPY_DTYPES,
    SafetensorsHeader,
    TensorInfo,
    canonical_header,
    load_arrays,
    read_header,
    read_header_from_path,
    save_arrays,
)
from qdht.models._manifest import (
    MODEL_SALT_PREFIX,
    PROVIDER_TOPIC_PREFIX,
    TrustedPublishers,
    has_chunk,
    have_bitfield,
    manifest_from_record,
    manifest_record,
    model_record_key,
    model_salt,
    provider_entry,
    provider_from_entry,
    provider_topic,
    sign_manifest,
    verify_manifest,
)
from qdht.models._placement import StorageCost, provider_record_size, storage_cost
from qdht.models._store import ChunkStore, Release, assemble, prepare_release

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MODEL_SALT_PREFIX",
    "NUMPY_DTYPES",
    "PROVIDER_TOPIC_PREFIX",
    "ChunkRequest",
    "ChunkSink",
    "ChunkStore",
    "FetchComplete",
    "FetchEvent",
    "FetchLimits",
    "FetchStuck",
    "HolderDropped",
    "ModelFetch",
    "Penalty",
    "Progress",
    "Release",
    "SafetensorsHeader",
    "StorageCost",
    "TensorInfo",
    "TrustedPublishers",
    "assemble",
    "canonical_header",
    "chunk_arrays",
    "chunk_file",
    "has_chunk",
    "have_bitfield",
    "load_arrays",
    "manifest_from_record",
    "manifest_record",
    "merkle_root",
    "model_record_key",
    "model_salt",
    "prepare_release",
    "provider_entry",
    "provider_from_entry",
    "provider_record_size",
    "provider_topic",
    "read_header",
    "read_header_from_path",
    "save_arrays",
    "sign_manifest",
    "storage_cost",
    "verify_manifest",
]
