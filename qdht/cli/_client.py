"""``qdht put``, ``qdht get``, ``qdht find-node``: one-shot operations as a client.

Each command starts a client-mode node (an ephemeral identity that stores
nothing for others), joins through ``--bootstrap``, does one thing, and exits:
0 on success, 1 when the value or node was not found or the network could
not be reached, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import trio

import qdht
from qdht.cli._common import CommandError, parse_contacts, parse_hex_id, usage_error
from qdht.cli._output import Output
from qdht.identity import DEFAULT_PUZZLE_DIFFICULTY, MAX_PUZZLE_DIFFICULTY
from qdht.wire import MAX_VALUE_SIZE, Contact

__all__ = ["register"]

DEFAULT_TIMEOUT: Final = 30.0

_T = TypeVar("_T")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        required=True,
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
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up after this long (default {DEFAULT_TIMEOUT:g})",
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
    _add_common(put)
    put.set_defaults(run=run_put)

    get = sub.add_parser(
        "get",
        help="fetch a value by key",
        description="Fetch the value stored under KEY and write it to stdout (or --output).",
        parents=[common],
    )
    get.add_argument("key", metavar="KEY", help="the value's key, 64 hex digits")
    get.add_argument("--output", "-o", type=Path, metavar="F", help="write the value to file F")
    _add_common(get)
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


async def _with_client(
    args: argparse.Namespace,
    contacts: list[Contact],
    operation: Callable[[qdht.Node], Awaitable[_T]],
) -> _T:
    """Start a client-mode node, join through ``contacts``, run ``operation``, stop."""
    config = qdht.Config(
        listen=_listen_for(contacts),
        client_mode=True,
        puzzle_difficulty=args.difficulty,
    )
    joined = False
    with trio.move_on_after(args.timeout) as scope:
        async with qdht.open_node(config) as node:
            await join(node, contacts)
            joined = True
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


def run_put(args: argparse.Namespace, out: Output) -> int:
    contacts = _check_common(args)
    value = _read_value(args)

    async def put(node: qdht.Node) -> bytes:
        return await node.put(value)

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

    async def get(node: qdht.Node) -> bytes | None:
        return await node.get(key)

    value = trio.run(_with_client, args, contacts, get)
    if value is None:
        raise CommandError(f"no value found for key {key.hex()}")
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
