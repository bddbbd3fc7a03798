"""Key files: plain and sealed round trips, permissions, overwrite, and every error."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cbor2
import pytest

from qdht.errors import (
    KeyFileError,
    KeyFileExistsError,
    KeyFilePermissionError,
    KeyFileVersionError,
    WrongPassphraseError,
)
from qdht.identity import Identity
from qdht.wire import dumps_canonical

#: A cheap scrypt cost for tests (the default, 2^17, is ~0.5 s per call).
FAST = 10


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_plain_round_trip_with_mode_0600(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    assert _mode(path) == 0o600
    loaded = Identity.load(path)
    assert loaded.node_id == identity.node_id
    assert loaded.xwing.seed == identity.xwing.seed
    assert loaded.mldsa.seed == identity.mldsa.seed
    assert loaded.difficulty == identity.difficulty
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]  # no temporary left behind


def test_file_holds_seeds_only(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    content = cbor2.loads(path.read_bytes())
    assert set(content) == {"type", "v", "xwing_seed", "mldsa_seed", "nonce", "difficulty"}
    assert len(path.read_bytes()) < 200


def test_sealed_round_trip(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path, passphrase="correct horse", scrypt_log_n=FAST)
    assert _mode(path) == 0o600
    assert identity.xwing.seed not in path.read_bytes()
    assert Identity.load(path, passphrase="correct horse").node_id == identity.node_id


def test_wrong_passphrase(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path, passphrase="correct horse", scrypt_log_n=FAST)
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        Identity.load(path, passphrase="battery staple")


def test_sealed_file_without_passphrase(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path, passphrase="pw", scrypt_log_n=FAST)
    with pytest.raises(WrongPassphraseError, match="passphrase is required"):
        Identity.load(path)


def test_tampered_sealed_header_is_detected(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path, passphrase="pw", scrypt_log_n=FAST)
    content = cbor2.loads(path.read_bytes())
    content["salt"] = bytes(16)
    path.write_bytes(dumps_canonical(content))
    with pytest.raises(WrongPassphraseError):
        Identity.load(path, passphrase="pw")


def test_no_overwrite_without_being_asked(
    identity: Identity, other_identity: Identity, tmp_path: Path
) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileExistsError, match="overwrite=True"):
        other_identity.save(path)
    assert path.read_bytes() == before
    other_identity.save(path, overwrite=True)
    assert Identity.load(path).node_id == other_identity.node_id
    assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_readable_by_others_is_refused(identity: Identity, tmp_path: Path, mode: int) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyFilePermissionError, match="chmod 600"):
        Identity.load(path)


def test_stricter_mode_is_fine(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    os.chmod(path, 0o400)
    assert Identity.load(path).node_id == identity.node_id


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chmod(path, 0o600)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xff",
        b"not cbor at all",
        dumps_canonical([1, 2]),
        dumps_canonical({"type": "keyfile"}),
    ],
)
def test_corrupt_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "node.key"
    _write(path, data)
    with pytest.raises(KeyFileError, match="corrupt") as info:
        Identity.load(path)
    assert not isinstance(info.value, KeyFileVersionError | WrongPassphraseError)


def test_truncated_file_is_corrupt(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    _write(path, path.read_bytes()[:-5])
    with pytest.raises(KeyFileError, match="corrupt"):
        Identity.load(path)


def test_nonce_not_solving_the_puzzle_is_corrupt(identity: Identity, tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    content = cbor2.loads(path.read_bytes())
    content["difficulty"] = 60
    _write(path, dumps_canonical(content))
    with pytest.raises(KeyFileError, match=r"corrupt.*puzzle"):
        Identity.load(path)


@pytest.mark.parametrize("version", [0, 2, 99])
def test_wrong_version(identity: Identity, tmp_path: Path, version: int) -> None:
    path = tmp_path / "node.key"
    identity.save(path)
    content = cbor2.loads(path.read_bytes())
    content["v"] = version
    _write(path, dumps_canonical(content))
    with pytest.raises(KeyFileVersionError, match=f"version {version}"):
        Identity.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        Identity.load(tmp_path / "absent.key")


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    _write(path, bytes(5000))
    with pytest.raises(KeyFileError, match="larger than"):
        Identity.load(path)


def test_symlink_is_not_followed(identity: Identity, tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    identity.save(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(KeyFileError, match="cannot open"):
        Identity.load(link)


def test_empty_passphrase_is_refused(identity: Identity, tmp_path: Path) -> None:
    from qdht.errors import ConfigError

    with pytest.raises(ConfigError, match="passphrase"):
        identity.save(tmp_path / "k", passphrase="")
    assert not (tmp_path / "k").exists()


def test_unwritable_directory(identity: Identity, tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        identity.save(tmp_path / "missing-dir" / "node.key")
