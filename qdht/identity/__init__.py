"""Node identities: keys, node IDs and the static puzzle, certificates, key files.

Implements ``protocol-spec/03-identity.md``.  The X-Wing key is the node's
routing identity (the node ID hashes it; rotating it yields a new node ID);
the ML-DSA-65 key is its owner identity (it signs certificates and records and
survives X-Wing rotations; it is replaced only by a successor statement).
"""

from typing import TYPE_CHECKING

from qdht._lazy import lazy_exports
from qdht.identity._certs import (
    CERTIFICATE_CONTEXT,
    CLOCK_SKEW,
    MAX_CERTIFICATE_LIFETIME,
    REVOCATION_CONTEXT,
    SUCCESSOR_ACCEPT_CONTEXT,
    SUCCESSOR_CONTEXT,
    certificate_node_id,
    revokes,
    successor_in_grace,
    verify_certificate,
    verify_revocation,
    verify_successor,
)
from qdht.identity._identity import DEFAULT_CERTIFICATE_LIFETIME, DEFAULT_GRACE_PERIOD, Identity
from qdht.identity._keyfile import (
    SCRYPT_LOG2_N,
    SCRYPT_P,
    SCRYPT_R,
    read_key_file,
    seal,
    unseal,
    write_key_file,
)
from qdht.identity._puzzle import (
    DEFAULT_PUZZLE_DIFFICULTY,
    MAX_PUZZLE_DIFFICULTY,
    NODE_ID_DOMAIN,
    NONCE_SIZE,
    compute_node_id,
    mint_nonce,
    node_id_from_hashes,
    puzzle_ok,
)
from qdht.wire import (
    EncryptedKeyFile,
    IdentityCertificate,
    KeyFile,
    Revocation,
    SuccessorStatement,
)

# Identity resolution (16-resolve.md) is a layer a node turns on with
# ``Config.resolve``: imported on first use (issue 19, a phone's memory).
if TYPE_CHECKING:
    from qdht.identity._resolver import IdentityResolution, ResolveConfig, ResolverCore
else:
    __getattr__ = lazy_exports(
        globals(),
        dict.fromkeys(
            ["IdentityResolution", "ResolveConfig", "ResolverCore"], "qdht.identity._resolver"
        ),
    )

__all__ = [
    "CERTIFICATE_CONTEXT",
    "CLOCK_SKEW",
    "DEFAULT_CERTIFICATE_LIFETIME",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_PUZZLE_DIFFICULTY",
    "MAX_CERTIFICATE_LIFETIME",
    "MAX_PUZZLE_DIFFICULTY",
    "NODE_ID_DOMAIN",
    "NONCE_SIZE",
    "REVOCATION_CONTEXT",
    "SCRYPT_LOG2_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "SUCCESSOR_ACCEPT_CONTEXT",
    "SUCCESSOR_CONTEXT",
    "EncryptedKeyFile",
    "Identity",
    "IdentityCertificate",
    "IdentityResolution",
    "KeyFile",
    "ResolveConfig",
    "ResolverCore",
    "Revocation",
    "SuccessorStatement",
    "certificate_node_id",
    "compute_node_id",
    "mint_nonce",
    "node_id_from_hashes",
    "puzzle_ok",
    "read_key_file",
    "revokes",
    "seal",
    "successor_in_grace",
    "unseal",
    "verify_certificate",
    "verify_revocation",
    "verify_successor",
    "write_key_file",
]
