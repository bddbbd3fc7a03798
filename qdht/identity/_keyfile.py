"""Key files: a node's seeds at rest, optionally sealed with a passphrase (03-identity.md §9).

Files are written atomically (a 0600 temporary file in the same directory,
fsync, rename, fsync of the directory), never replace an existing file unless
asked, and are refused on load when group or others may read them.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from qdht.crypto.aead import ChaChaPoly
from qdht.errors import (
    ConfigError,
    CryptoError,
    DecodeError,
    KeyFileError,
    KeyFileExistsError,
    KeyFilePermissionError,
    KeyFileVersionError,
    WrongPassphraseError,
)
from qdht.wire import (
    IDENTITY_VERSION,
    MAX_SCRYPT_LOG2_N,
    SALT_SIZE,
    EncryptedKeyFile,
    KeyFile,
    decode_object,
    encode,
    loads_canonical,
)

__all__ = [
    "SCRYPT_LOG2_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "read_key_file",
    "seal",
    "unseal",
    "write_key_file",
]

logger = logging.getLogger(__name__)

#: scrypt cost for new sealed key files: N = 2^17, r = 8, p = 1 (128 MiB,
#: ~0.5 s here).  Loading accepts the cost recorded in the file, up to the
#: bounds in qdht.wire._identity.
SCRYPT_LOG2_N: Final = 17
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
#: Largest key file read; real ones are under 300 bytes.
MAX_KEY_FILE_SIZE: Final = 4096


def _derive(passphrase: str, salt: bytes, log_n: int, r: int, p: int) -> ChaChaPoly:
    key = Scrypt(salt=salt, length=32, n=1 << log_n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return ChaChaPoly(key)


def seal(
    plain: KeyFile, passphrase: str, *, log_n: int = SCRYPT_LOG2_N, salt: bytes | None = None
) -> EncryptedKeyFile:
    """``plain`` encrypted under ``passphrase`` (fresh random salt unless given)."""
    if not passphrase:
        raise ConfigError("passphrase must not be empty")
    if not 10 <= log_n <= MAX_SCRYPT_LOG2_N:
        raise ConfigError(f"scrypt log2(N) must be in 10..{MAX_SCRYPT_LOG2_N}")
    salt = os.urandom(SALT_SIZE) if salt is None else salt
    header = EncryptedKeyFile(log_n, SCRYPT_R, SCRYPT_P, salt, bytes(17))
    aead = _derive(passphrase, salt, log_n, SCRYPT_R, SCRYPT_P)
    ciphertext = aead.encrypt(0, header.header_bytes(), encode(plain))
    return EncryptedKeyFile(log_n, SCRYPT_R, SCRYPT_P, salt, ciphertext)


def unseal(sealed: EncryptedKeyFile, passphrase: str) -> KeyFile:
    """The key file inside ``sealed``; WrongPassphraseError if it does not decrypt."""
    aead = _derive(passphrase, sealed.salt, sealed.log_n, sealed.r, sealed.p)
    try:
        plain = aead.decrypt(0, sealed.header_bytes(), sealed.ciphertext)
    except CryptoError:
        raise WrongPassphraseError("wrong passphrase, or the key file was tampered with") from None
    inner = _parse(plain, inner=True)
    if not isinstance(inner, KeyFile):  # pragma: no cover - inner=True ensures it
        raise KeyFileError("key file is corrupt: sealed content is not a key file")
    return inner


def _parse(data: bytes, *, inner: bool = False) -> KeyFile | EncryptedKeyFile:
    try:
        obj = loads_canonical(data)
    except DecodeError as exc:
        raise KeyFileError(f"key file is corrupt: {exc}") from None
    if type(obj) is dict and "v" in obj and obj["v"] != IDENTITY_VERSION:
        raise KeyFileVersionError(
            f"key file has format version {obj['v']!r}; this qdht reads version {IDENTITY_VERSION}"
        )
    expect: tuple[type[KeyFile] | type[EncryptedKeyFile], ...] = (
        (KeyFile,) if inner else (KeyFile, EncryptedKeyFile)
    )
    try:
        parsed = decode_object(obj, expect=expect)
    except DecodeError as exc:
        raise KeyFileError(f"key file is corrupt: {exc}") from None
    if not isinstance(parsed, KeyFile | EncryptedKeyFile):  # pragma: no cover - expect= ensures it
        raise KeyFileError("key file is corrupt: not a key file")
    return parsed


def _fsync_dir(directory: Path) -> None:
    if sys.platform == "win32":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_key_file(path: str | os.PathLike[str], data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise KeyFileExistsError(f"{target} exists; pass overwrite=True to replace it")
    try:
        # mkstemp creates the file with mode 0600 (O_CREAT|O_EXCL, 0o600).
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise KeyFileError(f"cannot create a key file in {directory}: {exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            # link() fails if the target appeared meanwhile: no silent overwrite.
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise KeyFileExistsError(
                    f"{target} exists; pass overwrite=True to replace it"
                ) from None
            except OSError:
                if target.exists():
                    raise KeyFileExistsError(
                        f"{target} exists; pass overwrite=True to replace it"
                    ) from None
                os.replace(tmp, target)  # file systems without hard links
            tmp.unlink(missing_ok=True)
        _fsync_dir(directory)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_key_file(path: str | os.PathLike[str]) -> KeyFile | EncryptedKeyFile:
    """Read and parse a key file, refusing one that others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise KeyFileError(f"key file {os.fspath(path)} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {os.fspath(path)}: {exc}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {os.fspath(path)} is not a regular file")
        if sys.platform != "win32" and info.st_mode & 0o077:
            raise KeyFilePermissionError(
                f"key file {os.fspath(path)} has mode {stat.S_IMODE(info.st_mode):04o}; "
                f"others may read it (run: chmod 600 {os.fspath(path)})"
            )
        data = f.read(MAX_KEY_FILE_SIZE + 1)
    if len(data) > MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"key file is corrupt: larger than {MAX_KEY_FILE_SIZE} bytes")
    return _parse(data)
