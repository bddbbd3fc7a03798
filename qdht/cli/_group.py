"""``qdht group create|key-package|add|remove|send|watch|list``: groups from the command line.

Each command starts a client-mode node with the groups layer, whose identity
and group state live in ``--data-dir`` (12-groups.md §13: the epoch
secrets, leaf keys and ratchets survive between commands), joins through
``--bootstrap``, does one thing and exits once its state is saved.  With
``--mixnet FILE`` every group record goes through the mixnet (§14).

A joiner runs ``key-package`` and hands the printed key package to a member,
who runs ``add``; the joiner's next ``watch`` (or any command) picks up the
Welcome.  Exit codes as every ``qdht`` command.
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
from qdht.cli._client import _add_common as add_client_options
from qdht.cli._client import _listen_for, join
from qdht.cli._common import CommandError, default_data_dir, parse_contacts, usage_error
from qdht.cli._mixnet import add_mixnet_option, mixnet_config
from qdht.cli._output import Output
from qdht.errors import ConfigError, GroupError

__all__ = ["register"]

DEFAULT_TIMEOUT: Final = 120.0

_T = TypeVar("_T")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser(
        "group",
        help="create groups, add and remove members, send and watch group messages",
        description="Group messaging (protocol-spec/12-groups.md): an MLS-shaped post-quantum "
        "group protocol whose commits, keys and messages live in write-once DHT records.  "
        "Group IDs and member IDs are hex.",
        parents=[common],
    )
    commands = group.add_subparsers(dest="group_command", metavar="COMMAND")

    def command(
        name: str, help: str, description: str, run: Any, *positional: tuple[str, str]
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = commands.add_parser(
            name, help=help, description=description, parents=[common]
        )
        for dest, text in positional:
            p.add_argument(dest, metavar=dest.upper(), help=text)
        p.set_defaults(run=run)
        _add_common(p)
        return p

    gid = ("group", "the group ID (hex)")
    command(
        "create",
        "create a group",
        "Create a group with this node as its only member; prints its ID.",
        run_create,
    )
    command(
        "key-package",
        "print a key package for a member to add this node with",
        "Print a fresh key package (hex); its private keys stay in --data-dir.  A member "
        "adds this node with it (qdht group add); the next command here joins.",
        run_key_package,
    )
    command(
        "add",
        "add a member",
        "Add the owner of KEY_PACKAGE (hex, or @FILE) to GROUP; prints the new epoch.",
        run_add,
        gid,
        ("key_package", "hex, or @FILE holding it"),
    )
    command(
        "remove",
        "remove a member",
        "Remove MEMBER (node ID, hex) from GROUP; prints the new epoch.",
        run_remove,
        gid,
        ("member", "the member's node ID (hex)"),
    )
    command(
        "update",
        "renew this member's keys",
        "Commit fresh leaf keys for this member in GROUP (heals a stolen state); prints the "
        "new epoch.",
        run_update,
        gid,
    )
    command(
        "send",
        "send TEXT to a group",
        "Catch up with GROUP, then send TEXT to its members; prints the epoch it was sent in.",
        run_send,
        gid,
        ("text", "the message (UTF-8)"),
    )
    watch = command(
        "watch",
        "print group events as they happen",
        "Print one JSON line per event of this node's groups (joined, message, added, "
        "removed, epoch, ...) until --count events or --timeout.",
        run_watch,
    )
    watch.add_argument("--count", type=int, metavar="N", help="stop after N events")
    watch.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help="only events of this kind (repeatable; e.g. message, joined)",
    )
    command(
        "list", "list this node's groups", "One JSON line per group: ID, epoch, members.", run_list
    )


def _add_common(p: argparse.ArgumentParser) -> None:
    add_client_options(p, timeout=DEFAULT_TIMEOUT)
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="identity and group state (default: $QDHT_HOME/group)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the group's commit window Δ (every member must use the same; default 5)",
    )
    add_mixnet_option(p)


def _groups_config(args: argparse.Namespace) -> Any:
    from qdht.groups import GroupsConfig
    from qdht.messaging import GroupConfig

    group = GroupConfig() if args.window is None else GroupConfig(window=args.window)
    delivery = "anonymous" if args.mixnet is not None else "direct"
    return GroupsConfig(group=group, delivery=delivery, poll_interval=5.0)


async def _with_groups(
    args: argparse.Namespace, out: Output, operation: Callable[[qdht.Node], Awaitable[_T]]
) -> _T:
    contacts = parse_contacts(args.bootstrap)
    data_dir = args.data_dir or default_data_dir() / "group"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        config = qdht.Config(
            listen=_listen_for(contacts),
            client_mode=True,
            data_dir=data_dir,
            puzzle_difficulty=args.difficulty,
            groups=_groups_config(args),
            mixnet=None if args.mixnet is None else mixnet_config(args.mixnet),
        )
    except (ConfigError, OSError) as exc:
        raise usage_error(str(exc)) from None
    with trio.move_on_after(args.timeout):
        async with qdht.open_node(config) as node:
            out.stderr.write(f"qdht: groups as {node.node_id.hex()}\n")
            await join(node, contacts)
            if args.mixnet is not None:
                await node.anonymous.update_directory()
            if node.groups.pending_invitations():
                await node.groups.accept_welcomes()  # a member added us since last time
            try:
                result = await operation(node)
            except GroupError as exc:
                raise CommandError(str(exc)) from None
            finally:
                with trio.CancelScope(shield=True):
                    await node.groups.flush()
            return result
    raise CommandError(f"timed out after {args.timeout:g} s")


def _group_id(text: str) -> bytes:
    try:
        gid = bytes.fromhex(text)
    except ValueError:
        raise usage_error(f"GROUP must be hex, got {text!r}") from None
    if not 1 <= len(gid) <= 32:
        raise usage_error("GROUP must be 1..32 bytes of hex")
    return gid


def _known(node: qdht.Node, gid: bytes) -> bytes:
    if gid not in node.groups.groups():
        raise CommandError(f"this node is not a member of group {gid.hex()}")
    return gid


def run_create(args: argparse.Namespace, out: Output) -> int:
    async def create(node: qdht.Node) -> bytes:
        return await node.groups.create()

    out.emit(trio.run(_with_groups, args, out, create).hex())
    return 0


def run_key_package(args: argparse.Namespace, out: Output) -> int:
    async def key_package(node: qdht.Node) -> bytes:
        return node.groups.key_package()

    out.emit(trio.run(_with_groups, args, out, key_package).hex())
    return 0


def _read_key_package(text: str) -> bytes:
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = sys.stdin.read() if text == "@-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            raise usage_error(f"KEY_PACKAGE {path}: {exc}") from None
    try:
        return bytes.fromhex(text.strip())
    except ValueError:
        raise usage_error("KEY_PACKAGE must be hex (as qdht group key-package prints it)") from None


def run_add(args: argparse.Namespace, out: Output) -> int:
    gid = _group_id(args.group)
    kp = _read_key_package(args.key_package)

    async def add(node: qdht.Node) -> int:
        await node.groups.synced(_known(node, gid))
        try:
            await node.groups.add(gid, kp)
        except ConfigError as exc:
            raise usage_error(str(exc)) from None
        return node.groups.group(gid).epoch

    out.emit(str(trio.run(_with_groups, args, out, add)))
    return 0


def run_remove(args: argparse.Namespace, out: Output) -> int:
    gid = _group_id(args.group)
    try:
        member = bytes.fromhex(args.member)
    except ValueError:
        raise usage_error(f"MEMBER must be a node ID in hex, got {args.member!r}") from None

    async def remove(node: qdht.Node) -> int:
        await node.groups.synced(_known(node, gid))
        try:
            await node.groups.remove(gid, member)
        except ConfigError as exc:
            raise CommandError(str(exc)) from None
        return node.groups.group(gid).epoch

    out.emit(str(trio.run(_with_groups, args, out, remove)))
    return 0


def run_update(args: argparse.Namespace, out: Output) -> int:
    gid = _group_id(args.group)

    async def update(node: qdht.Node) -> int:
        await node.groups.synced(_known(node, gid))
        await node.groups.update(gid)
        return node.groups.group(gid).epoch

    out.emit(str(trio.run(_with_groups, args, out, update)))
    return 0


def run_send(args: argparse.Namespace, out: Output) -> int:
    gid = _group_id(args.group)

    async def send(node: qdht.Node) -> int:
        epoch = await node.groups.synced(_known(node, gid))
        await node.groups.send(gid, args.text.encode())
        return epoch

    out.emit(str(trio.run(_with_groups, args, out, send)))
    return 0


def event_line(group_id: bytes, event: object) -> dict[str, Any] | None:
    """One JSON-ready line for a group event (None for one not worth a line)."""
    from qdht.groups import GroupJoined
    from qdht.messaging import (
        ApplicationMessage,
        EpochChanged,
        Equivocation,
        ForkDetected,
        MemberAdded,
        MemberRemoved,
        Removed,
    )

    line: dict[str, Any] = {"group": group_id.hex()}
    if isinstance(event, ApplicationMessage):
        text = event.data.decode("utf-8", "replace")
        line |= {"event": "message", "epoch": event.epoch, "sender": event.identity.hex()}
        line["text"] = text
    elif isinstance(event, GroupJoined):
        line |= {"event": "joined", "epoch": event.epoch}
    elif isinstance(event, MemberAdded | MemberRemoved):
        kind = "added" if isinstance(event, MemberAdded) else "removed"
        line |= {"event": kind, "epoch": event.epoch, "member": event.identity.hex()}
    elif isinstance(event, EpochChanged):
        line |= {"event": "epoch", "epoch": event.epoch}
    elif isinstance(event, Removed):
        line |= {"event": "removed-self", "epoch": event.epoch}
    elif isinstance(event, Equivocation):
        line |= {"event": "equivocation", "epoch": event.epoch, "sender": event.sender}
    elif isinstance(event, ForkDetected):
        line |= {"event": "fork", "epoch": event.epoch, "resolved": event.resolved}
    else:
        return None
    return line


def run_watch(args: argparse.Namespace, out: Output) -> int:
    if args.count is not None and args.count < 1:
        raise usage_error("--count must be at least 1")

    async def watch(node: qdht.Node) -> int:
        seen = 0
        async with node.groups.events() as notices:
            async for notice in notices:
                line = event_line(notice.group_id, notice.event)
                if line is None or (args.kind and line["event"] not in args.kind):
                    continue
                out.emit(json.dumps(line, ensure_ascii=False))
                seen += 1
                if args.count is not None and seen >= args.count:
                    break
        return seen

    try:
        trio.run(_with_groups, args, out, watch)
    except CommandError:
        if args.count is not None:
            raise
    return 0


def run_list(args: argparse.Namespace, out: Output) -> int:
    async def listing(node: qdht.Node) -> list[dict[str, Any]]:
        rows = []
        for gid in node.groups.groups():
            try:
                epoch = await node.groups.synced(gid)
            except GroupError:
                continue  # removed while away: the group is gone from here now
            group = node.groups.group(gid)
            members = sorted(who.hex() for who in group.members().values())
            rows.append({"group": gid.hex(), "epoch": epoch, "members": members})
        return rows

    for row in trio.run(_with_groups, args, out, listing):
        out.emit(json.dumps(row))
    return 0
