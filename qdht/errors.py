"""Exceptions raised by qdht.

Two families, following DESIGN §3 ("Remote input never crashes a node"):

* Local misuse (bad arguments, missing or unreadable files, wrong passphrase)
  raises a subclass of :class:`QdhtError` that names what was wrong.
* Remote input that is malformed, forged or replayed is *not* raised out of a
  node: cores report it as a drop with a reason.  The exceptions below that
  describe remote input (:class:`DecodeError`, :class:`HandshakeError`, ...)
  are used inside the cores and by the stand-alone decoders and validators,
  where the caller asked for a verdict on a piece of data.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "ContactError",
    "CryptoError",
    "DecodeError",
    "GroupError",
    "HandshakeError",
    "IdentityError",
    "InvalidSignatureError",
    "KeyFileError",
    "KeyFileExistsError",
    "KeyFilePermissionError",
    "KeyFileVersionError",
    "LookupFailedError",
    "ModelError",
    "NodeStateError",
    "PrivacyBudgetExceededError",
    "PuzzleError",
    "QdhtError",
    "RPCError",
    "RecordError",
    "RecordRejectedError",
    "SessionError",
    "StoreError",
    "TransportError",
    "WrongPassphraseError",
]


class QdhtError(Exception):
    """Base class of every exception qdht raises on purpose."""


class ConfigError(QdhtError, ValueError):
    """A configuration value or function argument is out of range or inconsistent."""


class DecodeError(QdhtError, ValueError):
    """Bytes are not a valid qdht protocol object.

    ``reason`` is a short machine-readable code (for example
    ``"non-deterministic"`` or ``"field-size"``), listed in
    ``protocol-spec/00-conventions.md``; ``path`` locates the offending item in
    the CBOR data item with a JSONPath-like string such as ``$.nodes[3].id``
    (``$`` for the whole item).
    """

    def __init__(self, reason: str, path: str = "$", detail: str = "") -> None:
        self.reason = reason
        self.path = path
        self.detail = detail
        message = f"{reason} at {path}"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)


class ContactError(QdhtError, ValueError):
    """A contact URI or transport address cannot be parsed or is not allowed."""


class CryptoError(QdhtError):
    """A cryptographic operation failed (wrong key size, failed decryption, ...)."""


class BackendUnavailableError(CryptoError):
    """The selected cryptographic backend is not installed or lacks an algorithm."""


class InvalidSignatureError(CryptoError):
    """A signature does not verify under the given key and context."""


class IdentityError(QdhtError):
    """An identity, certificate, successor statement or revocation is invalid."""


class PuzzleError(IdentityError):
    """A node ID does not solve the static puzzle at the required difficulty."""


class KeyFileError(QdhtError):
    """A key file is missing, corrupt or unreadable."""


class KeyFileExistsError(KeyFileError, FileExistsError):
    """Refusing to overwrite an existing key file (pass ``overwrite=True`` to replace it)."""


class KeyFilePermissionError(KeyFileError, PermissionError):
    """A key file is readable by other users; qdht requires mode 0600 or stricter."""


class KeyFileVersionError(KeyFileError):
    """A key file has a format version this qdht does not understand."""


class WrongPassphraseError(KeyFileError):
    """The passphrase does not decrypt the key file (or the file was tampered with)."""


class HandshakeError(QdhtError):
    """A handshake message is invalid, or the peer is not who we meant to reach."""


class SessionError(QdhtError):
    """Misuse of a session (sending before it is established, message too large, ...)."""


class TransportError(QdhtError, OSError):
    """A transport cannot bind, connect or send."""


class RPCError(QdhtError):
    """A remote procedure call failed: timed out, or the peer answered ERROR."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        self.code = code
        super().__init__(message)


class LookupFailedError(QdhtError):
    """An iterative lookup could not reach any node."""


class RecordError(QdhtError):
    """A record is invalid: bad signature, key binding, sequence, expiry or size."""


class NodeStateError(QdhtError, RuntimeError):
    """An operation was used on a node that is not running, or is in client mode."""


class RecordRejectedError(RecordError):
    """A received record fails a rule of ``protocol-spec/07-records.md``.

    ``reason`` is the machine-readable code of the rule (for example
    ``"bad-signature"`` or ``"seq-regression"``), listed in 07-records.md §6 and §7;
    a node counts drops under it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class StoreError(QdhtError):
    """A record store cannot be used: closed, corrupt, or of a newer schema version."""


class ModelError(QdhtError):
    """A model, safetensors file, manifest or chunk is unacceptable (``13-models.md``).

    ``reason`` is a machine-readable code (for example ``"bad-offsets"``,
    ``"untrusted-publisher"`` or ``"root-mismatch"``), listed in 13-models.md;
    a fetch counts what it drops under it.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class GroupError(QdhtError):
    """A group-messaging operation was misused, or group input failed a check.

    Group cores catch it on remote input and count a drop; it reaches the
    caller only for local misuse (sending in a group one is not a member of,
    a padding size the message does not fit, ...).
    """


class PrivacyBudgetExceededError(QdhtError):
    """A training round would spend more privacy (epsilon) than its budget allows.

    Raised before the round starts (14-training.md §4.3): the budget fails
    closed, so the round does not run.
    """
