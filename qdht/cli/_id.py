"""``qdht id new`` and ``qdht id show``: create and inspect a node's identity key file."""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path
from typing import Any

from qdht.cli._common import (
    CommandError,
    default_data_dir,
    read_passphrase,
    usage_error,
)
from qdht.cli._output import Output
from qdht.config import IDENTITY_FILE
from qdht.crypto.hashes import sha3_256
from qdht.errors import KeyFileExistsError, WrongPassphraseError
from qdht.identity import (
    DEFAULT_CERTIFICATE_LIFETIME,
    DEFAULT_PUZZLE_DIFFICULTY,
    MAX_PUZZLE_DIFFICULTY,
    SCRYPT_LOG2_N,
    EncryptedKeyFile,
    Identity,
    read_key_file,
    verify_certificate,
)
from qdht.wire import encode

__all__ = ["load_identity", "register"]

#: Difficulties above this take minutes to hours to mint in CPython (2^d hashes).
_SLOW_DIFFICULTY = 24


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    id_parser = sub.add_parser(
        "id",
        help="create or inspect a node identity key file",
        description="Create or inspect a node identity (X-Wing and ML-DSA-65 keys, puzzle nonce).",
        parents=[common],
    )
    id_sub = id_parser.add_subparsers(dest="id_command", metavar="ACTION")
    id_parser.set_defaults(run=_no_action(id_parser))

    default_key = default_data_dir() / IDENTITY_FILE
    new = id_sub.add_parser(
        "new",
        help="create a new identity key file",
        description="Create fresh keys, mint a node ID that solves the puzzle, write the "
        "seeds to a key file (mode 0600).",
        parents=[common],
    )
    new.add_argument(
        "--key-file", type=Path, default=default_key, help=f"where to write (default {default_key})"
    )
    new.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="encrypt the key file with the passphrase on FILE's first line (scrypt)",
    )
    new.add_argument(
        "--difficulty",
        type=int,
        default=DEFAULT_PUZZLE_DIFFICULTY,
        help=f"puzzle difficulty in leading zero bits (network parameter, default "
        f"{DEFAULT_PUZZLE_DIFFICULTY}: about a second)",
    )
    new.add_argument(
        "--scrypt-log-n",
        type=int,
        default=SCRYPT_LOG2_N,
        metavar="N",
        help=f"scrypt cost 2^N of an encrypted key file (default {SCRYPT_LOG2_N}: 128 MiB)",
    )
    new.add_argument("--force", action="store_true", help="replace an existing key file")
    new.set_defaults(run=run_new)

    show = id_sub.add_parser(
        "show",
        help="show the node ID and keys of a key file",
        description="Show the node ID, puzzle difficulty, public key hashes and the "
        "certificate a node with this key file would present.",
        parents=[common],
    )
    show.add_argument(
        "--key-file", type=Path, default=default_key, help=f"key file (default {default_key})"
    )
    show.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted file")
    show.set_defaults(run=run_show)


def _no_action(parser: argparse.ArgumentParser) -> Any:
    def run(args: argparse.Namespace, out: Output) -> int:
        parser.print_help(out.stdout)
        return 2

    return run


def load_identity(path: Path, passphrase_file: str | None) -> Identity:
    """The identity in ``path``; errors name the file and say what to do."""
    passphrase = read_passphrase(passphrase_file)
    try:
        return Identity.load(path, passphrase=passphrase)
    except WrongPassphraseError as exc:
        if passphrase is None:
            raise CommandError(f"{exc} (pass --passphrase-file FILE)") from None
        raise


def run_new(args: argparse.Namespace, out: Output) -> int:
    path: Path = args.key_file
    if not 0 <= args.difficulty <= MAX_PUZZLE_DIFFICULTY:
        raise usage_error(f"--difficulty must be in 0..{MAX_PUZZLE_DIFFICULTY}")
    if (path.exists() or path.is_symlink()) and not args.force:
        raise CommandError(f"{path} exists; pass --force to replace it (its identity is lost)")
    passphrase = read_passphrase(args.passphrase_file)
    if args.difficulty > _SLOW_DIFFICULTY:
        out.note(f"difficulty {args.difficulty}: minting takes about 2^{args.difficulty} hashes")
    _make_parent(path)
    with out.err_console.status(f"minting a node ID at difficulty {args.difficulty}"):
        identity = Identity.generate(args.difficulty)
    try:
        identity.save(
            path, passphrase=passphrase, overwrite=args.force, scrypt_log_n=args.scrypt_log_n
        )
    except KeyFileExistsError:
        raise CommandError(f"{path} exists; pass --force to replace it") from None
    out.emit(identity.node_id.hex())
    encrypted = "encrypted with scrypt" if passphrase is not None else "not encrypted"
    out.note(f"wrote {path} (mode 0600, {encrypted}), difficulty {identity.difficulty}")
    return 0


def _make_parent(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        try:
            parent.mkdir(mode=0o700, parents=True)
        except OSError as exc:
            raise CommandError(f"cannot create directory {parent}: {exc.strerror}") from None


def run_show(args: argparse.Namespace, out: Output) -> int:
    path: Path = args.key_file
    identity = load_identity(path, args.passphrase_file)
    now = int(time.time())
    cert = identity.certificate(now=now, lifetime=DEFAULT_CERTIFICATE_LIFETIME)
    # A node presents a fresh certificate like this one; checking it here
    # proves the file's keys, nonce and difficulty are consistent.
    verified = verify_certificate(cert, now=now, difficulty=identity.difficulty)
    if verified != identity.node_id:  # pragma: no cover - Identity ensures it
        raise CommandError(f"{path}: certificate proves a different node ID")
    encrypted = _is_encrypted(path)
    rows = [
        ("node ID", identity.node_id.hex()),
        ("key file", f"{path} ({'encrypted' if encrypted else 'not encrypted'})"),
        ("puzzle difficulty", f"{identity.difficulty} (nonce {identity.nonce.hex()} solves it)"),
        ("X-Wing public key", f"sha3-256 {sha3_256(identity.xwing.public_key_bytes()).hex()}"),
        ("ML-DSA-65 public key", f"sha3-256 {identity.mldsa_public_hash.hex()}"),
        (
            "certificate",
            f"{len(encode(cert))} bytes, signature verifies; a node started now presents one "
            f"valid {_utc(cert.not_before)} to {_utc(cert.not_after)}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        out.emit(f"{name + ':':<{width + 1}} {value}")
    return 0


def _is_encrypted(path: Path) -> bool:
    return isinstance(read_key_file(os.fspath(path)), EncryptedKeyFile)


def _utc(timestamp: int) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")
