"""``qdht put``, ``get``, ``delete``, ``watch``, ``find-node``: one-shot operations as a client.

Each command starts a client-mode node (it stores nothing for others), joins
through ``--bootstrap``, does one thing, and exits: 0 on success, 1 when the
value or node was not found or the network could not be reached, 2 on usage
errors.  The node's identity is ephemeral, except for commands that sign
records (``put --mutable``, ``delete``): they sign with ``--identity F`` (a key
file, created if missing), the owner of the record.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import trio

import qdht
from qdht.cli._common import (
    CommandError,
    parse_contacts,
    parse_hex_id,
    read_passphrase,
    usage_error,
)
from qdht.cli._mixnet import add_mixnet_option, mixnet_config
from qdht.cli._output import Output
from qdht.dht import ValidRecord
from qdht.errors import ConfigError
from qdht.identity import DEFAULT_PUZZLE_DIFFICULTY, MAX_PUZZLE_DIFFICULTY
from qdht.wire import MAX_SALT_SIZE, MAX_VALUE_SIZE, Contact

__all__ = ["register"]

DEFAULT_TIMEOUT: Final = 30.0

_T = TypeVar("_T")


def _add_common(
    p: argparse.ArgumentParser, *, required: bool = True, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """``--bootstrap`` (required unless told), ``--difficulty`` and ``--timeout``."""
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        required=required,
        metavar="URI",
        help="contact URI of a node to join through, qdht+udp://IP:PORT/NODE-ID (repeatable)",
    )
    p.add_argument(
        "--difficulty",
        type=int,
        default=DEFAULT_PUZZLE_DIFFICULTY,
        help=f"the network's puzzle difficulty (default {DEFAULT_PUZZLE_DIFFICULTY})",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="SECONDS",
        help=f"give up after this long (default {timeout:g})",
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    put = sub.add_parser(
        "put",
        help="store a value; prints its key",
        description="Store an immutable value in the DHT and print its key (hex).",
        parents=[common],
    )
    put.add_argument("value", nargs="?", metavar="VALUE", help="the value (UTF-8), or - for stdin")
    put.add_argument("--file", type=Path, metavar="F", help="store the bytes of file F")
    put.add_argument(
        "--mutable",
        action="store_true",
        help="store a mutable record signed by --identity, under (its owner, --salt); "
        "prints the record's key",
    )
    put.add_argument("--seq", type=int, metavar="N", help="sequence number (default: next one)")
    put.add_argument(
        "--cas", type=int, metavar="N", help="only if the stored record's sequence number is N"
    )
    put.add_argument(
        "--ttl", type=float, metavar="SECONDS", help="lifetime (default 24 h, at most 7 days)"
    )
    _add_identity(put)
    _add_common(put)
    _add_anonymous(put)
    put.set_defaults(run=run_put)

    delete = sub.add_parser(
        "delete",
        help="delete a mutable record (signed tombstone)",
        description="Delete the mutable record of --identity under --salt by storing a signed "
        "tombstone with a higher sequence number.  Prints the key.",
        parents=[common],
    )
    _add_identity(delete, required=True)
    _add_common(delete)
    delete.set_defaults(run=run_delete)

    watch = sub.add_parser(
        "watch",
        help="print updates of a key as they happen",
        description="Subscribe to KEY at the nodes that store it and print one JSON line per "
        "update (kind, seq, value as hex) until Ctrl-C, --count updates or --timeout.",
        parents=[common],
    )
    watch.add_argument("key", metavar="KEY", help="the key, 64 hex digits")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N updates")
    _add_common(watch)
    watch.set_defaults(run=run_watch)

    get = sub.add_parser(
        "get",
        help="fetch a value by key",
        description="Fetch the value stored under KEY and write it to stdout (or --output).",
        parents=[common],
    )
    get.add_argument("key", metavar="KEY", help="the value's key, 64 hex digits")
    get.add_argument("--output", "-o", type=Path, metavar="F", help="write the value to file F")
    _add_common(get)
    _add_anonymous(get)
    get.set_defaults(run=run_get)

    find = sub.add_parser(
        "find-node",
        help="look up the nodes closest to an ID",
        description="Run an iterative lookup for ID and print the contact URIs of the "
        "closest nodes found, closest first.  Exit status 1 if ID itself was not found.",
        parents=[common],
    )
    find.add_argument("node_id", metavar="ID", help="a node ID, 64 hex digits")
    _add_common(find)
    find.set_defaults(run=run_find_node)


def _add_identity(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument(
        "--identity",
        type=Path,
        required=required,
        metavar="F",
        help="key file of the owner that signs the record (created if missing)",
    )
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted key file")
    p.add_argument(
        "--salt",
        default="",
        metavar="TEXT",
        help="salt (UTF-8, at most 64 bytes): one owner keeps one record per salt",
    )


def _add_anonymous(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--anonymous",
        action="store_true",
        help="go through the mixnet: exits run the operation and never learn who asked "
        "(needs --mixnet)",
    )
    add_mixnet_option(p)


def _check_common(args: argparse.Namespace) -> list[Contact]:
    if not 0 <= args.difficulty <= MAX_PUZZLE_DIFFICULTY:
        raise usage_error(f"--difficulty must be in 0..{MAX_PUZZLE_DIFFICULTY}")
    if not args.timeout > 0:
        raise usage_error("--timeout must be positive")
    return parse_contacts(args.bootstrap)


def _listen_for(contacts: list[Contact]) -> tuple[str, ...]:
    """One ephemeral local address per transport the bootstrap contacts use.

    Loopback contacts get a loopback socket, others a wildcard one; the
    address family follows the first contact of each transport (a node
    listens once per transport).
    """
    listen: dict[str, str] = {}
    for contact in contacts:
        for address in contact.addresses:
            ip = address.ip
            if ip.is_loopback:
                host = "[::1]" if ip.version == 6 else "127.0.0.1"
            else:
                host = "[::]" if ip.version == 6 else "0.0.0.0"
            listen.setdefault(address.transport, f"{address.transport}://{host}:0")
    return tuple(listen.values())


def _anonymous_config(args: argparse.Namespace) -> Any:
    if not getattr(args, "anonymous", False):
        return None
    if args.mixnet is None:
        raise usage_error("--anonymous needs --mixnet FILE: the network's directory keys")
    return mixnet_config(args.mixnet)


async def _with_client(
    args: argparse.Namespace,
    contacts: list[Contact],
    operation: Callable[[qdht.Node], Awaitable[_T]],
) -> _T:
    """Start a client-mode node, join through ``contacts``, run ``operation``, stop."""
    identity = getattr(args, "identity", None)
    passphrase_file = getattr(args, "passphrase_file", None)
    try:
        config = qdht.Config(
            listen=_listen_for(contacts),
            client_mode=True,
            puzzle_difficulty=args.difficulty,
            identity=identity,
            identity_passphrase=read_passphrase(passphrase_file),
            mixnet=_anonymous_config(args),
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None
    joined = False
    with trio.move_on_after(args.timeout) as scope:
        async with qdht.open_node(config) as node:
            await join(node, contacts)
            joined = True
            if node.config.mixnet is not None and not await node.anonymous.update_directory():
                raise CommandError(
                    "no mix directory with enough valid signatures was found "
                    f"({node.stats()['mixnet']['drops']})"
                )
            return await operation(node)
    assert scope.cancelled_caught
    if not joined:
        raise _no_answer(contacts, f" within {args.timeout:g} s")
    raise CommandError(f"timed out after {args.timeout:g} s")


async def join(node: qdht.Node, contacts: list[Contact]) -> None:
    """Bootstrap ``node``; a :class:`CommandError` saying why when no contact answered."""
    if await node.bootstrap(contacts):
        return
    outcome = node.stats()["bootstrap"]
    if outcome["refused"] and not outcome["unreachable"]:
        pinned = ", ".join(c.node_id.hex()[:16] + "..." for c in contacts)
        raise CommandError(
            f"bootstrap failed: the node at the bootstrap address is not the pinned node ID "
            f"({pinned}); check the contact URI"
        )
    if outcome["refused"]:
        raise CommandError(
            f"bootstrap failed: {outcome['refused']} contact(s) answered with another node ID, "
            f"{outcome['unreachable']} did not answer"
        )
    raise _no_answer(contacts)


def _no_answer(contacts: list[Contact], within: str = "") -> CommandError:
    addresses = ", ".join(str(c.address) for c in contacts)
    # A node silently drops handshakes addressed to another node ID (mac1,
    # 04-handshake.md §5.1), so "down" and "wrong ID" look the same from here.
    return CommandError(
        f"bootstrap failed: no answer from {addresses}{within} (is the node running, and is "
        "the node ID in the contact URI its own? a node ignores handshakes for other IDs)"
    )


def _salt(args: argparse.Namespace) -> bytes:
    salt: bytes = args.salt.encode("utf-8")
    if len(salt) > MAX_SALT_SIZE:
        raise usage_error(f"--salt is {len(salt)} bytes in UTF-8, more than {MAX_SALT_SIZE}")
    return salt


def run_put(args: argparse.Namespace, out: Output) -> int:
    contacts = _check_common(args)
    value = _read_value(args)
    if args.mutable and args.identity is None:
        raise usage_error("--mutable needs --identity F: the key file of the record's owner")
    if not args.mutable and (args.seq is not None or args.cas is not None or args.identity):
        raise usage_error("--seq, --cas and --identity are for --mutable records")
    salt = _salt(args) if args.mutable else b""

    async def put(node: qdht.Node) -> bytes:
        if args.anonymous and args.mutable:
            if args.cas is not None:
                raise usage_error("--cas is not available with --anonymous")
            return await node.anonymous.put_mutable(value, salt=salt, seq=args.seq, ttl=args.ttl)
        if args.anonymous:
            return await node.anonymous.put_immutable(value, ttl=args.ttl)
        if args.mutable:
            return await node.put_mutable(
                value, salt=salt, seq=args.seq, cas=args.cas, ttl=args.ttl
            )
        return await node.put_immutable(value, ttl=args.ttl)

    key = trio.run(_with_client, args, contacts, put)
    out.emit(key.hex())
    return 0


def _read_value(args: argparse.Namespace) -> bytes:
    if (args.value is None) == (args.file is None):
        raise usage_error("give exactly one of VALUE, - (stdin) or --file F")
    if args.file is not None:
        try:
            with open(args.file, "rb") as f:
                value = f.read(MAX_VALUE_SIZE + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
    elif args.value == "-":
        value = sys.stdin.buffer.read(MAX_VALUE_SIZE + 1)
    else:
        value = args.value.encode("utf-8")
    if len(value) > MAX_VALUE_SIZE:
        raise usage_error(f"the value is larger than {MAX_VALUE_SIZE} bytes")
    return value


def run_get(args: argparse.Namespace, out: Output) -> int:
    contacts = _check_common(args)
    key = parse_hex_id(args.key, what="KEY")

    async def get(node: qdht.Node) -> ValidRecord | None:
        if args.anonymous:
            return await node.anonymous.get_record(key)
        return await node.get_record(key)

    record = trio.run(_with_client, args, contacts, get)
    if record is None:
        raise CommandError(f"no value found for key {key.hex()}")
    if record.deleted:
        raise CommandError(f"key {key.hex()} was deleted by its owner (seq {record.seq})")
    value = record.value or b""
    if args.output is not None:
        try:
            args.output.write_bytes(value)
        except OSError as exc:
            raise CommandError(f"cannot write {args.output}: {exc.strerror}") from None
    else:
        out.stdout.flush()
        out.stdout.buffer.write(value)
        out.stdout.buffer.flush()
    return 0


def run_delete(args: argparse.Namespace, out: Output) -> int:
    contacts = _check_common(args)
    salt = _salt(args)

    async def delete(node: qdht.Node) -> bytes:
        key = node.mutable_key(salt)
        await node.delete(key, salt=salt)
        return key

    key = trio.run(_with_client, args, contacts, delete)
    out.emit(key.hex())
    return 0


def run_watch(args: argparse.Namespace, out: Output) -> int:
    contacts = _check_common(args)
    key = parse_hex_id(args.key, what="KEY")
    if args.count is not None and args.count < 1:
        raise usage_error("--count must be at least 1")
    seen = 0

    async def watch(node: qdht.Node) -> None:
        nonlocal seen
        async with node.watch(key) as updates:
            async for update in updates:
                record = update.record
                line = {
                    "key": key.hex(),
                    "kind": update.kind,
                    "seq": record.seq,
                    "value": None if record.value is None else record.value.hex(),
                }
                out.emit(json.dumps(line, sort_keys=True))
                seen += 1
                if args.count is not None and seen >= args.count:
                    return

    try:
        trio.run(_with_client, args, contacts, watch)
    except CommandError:
        if not seen:
            raise
    return 0


def run_find_node(args: argparse.Namespace, out: Output) -> int:
    contacts = _check_common(args)
    target = parse_hex_id(args.node_id, what="ID")

    async def find(node: qdht.Node) -> list[Contact]:
        return await node.find_node(target)

    found = trio.run(_with_client, args, contacts, find)
    for contact in found:
        out.emit(contact.to_uri())
    if not any(contact.node_id == target for contact in found):
        raise CommandError(f"node {target.hex()} not found ({len(found)} closest nodes printed)")
    return 0
