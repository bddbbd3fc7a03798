"""``qdht msg send CONTACT TEXT`` and ``qdht msg inbox``: direct messages from the command line.

Each command starts a client-mode node with the messaging layer, whose
identity and messaging state live in ``--data-dir`` (so the ratchets, the
prekeys and the inbox survive between commands), joins through
``--bootstrap`` and publishes its prekeys.  ``send`` writes the message to
the recipient's mailbox before exiting; ``inbox`` polls once (twice, so
slots of a conversation opened by the first poll are read too) and prints
every message received so far.  Exit codes as every ``qdht`` command.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import trio

import qdht
from qdht.cli._client import _listen_for, join
from qdht.cli._common import CommandError, default_data_dir, parse_contacts, usage_error
from qdht.cli._output import Output
from qdht.errors import ConfigError
from qdht.identity import DEFAULT_PUZZLE_DIFFICULTY
from qdht.messaging import IncomingMessage, MessagingConfig

__all__ = ["register"]

DEFAULT_TIMEOUT: Final = 60.0

_T = TypeVar("_T")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    msg = sub.add_parser(
        "msg",
        help="send and read private direct messages",
        description="Private direct messages (protocol-spec/11-messaging.md): post-quantum "
        "first contact, a triple ratchet and mailboxes in the DHT.  Delivery is direct "
        "(the mixnet is not in this build): mailbox holders see both parties' addresses.",
        parents=[common],
    )
    commands = msg.add_subparsers(dest="msg_command", metavar="COMMAND")
    send = commands.add_parser(
        "send",
        help="send TEXT to CONTACT",
        description="Encrypt TEXT for CONTACT (a node ID or contact URI) and write it to its "
        "mailbox in the DHT; prints the message ID and its delivery state.",
        parents=[common],
    )
    send.add_argument("contact", metavar="CONTACT", help="node ID (64 hex digits) or contact URI")
    send.add_argument("text", metavar="TEXT", help="the message (UTF-8)")
    _add_common(send)
    send.set_defaults(run=run_send)
    inbox = commands.add_parser(
        "inbox",
        help="fetch and print received messages",
        description="Poll the mailboxes once and print every received message as one JSON "
        "line (id, sender, time, text).",
        parents=[common],
    )
    inbox.add_argument("--new", action="store_true", help="only messages not printed before")
    _add_common(inbox)
    inbox.set_defaults(run=run_inbox)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        required=True,
        metavar="URI",
        help="contact URI of a node to join through (repeatable)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="identity and messaging state (default: $QDHT_HOME/msg)",
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


async def _with_messaging(
    args: argparse.Namespace, out: Output, operation: Callable[[qdht.Node], Awaitable[_T]]
) -> _T:
    contacts = parse_contacts(args.bootstrap)
    data_dir = args.data_dir or default_data_dir() / "msg"
    try:
        config = qdht.Config(
            listen=_listen_for(contacts),
            client_mode=True,
            data_dir=data_dir,
            puzzle_difficulty=args.difficulty,
            messaging=MessagingConfig(),
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None
    with trio.move_on_after(args.timeout):
        async with qdht.open_node(config) as node:
            out.stderr.write(f"qdht: messaging as {node.node_id.hex()}\n")
            await join(node, contacts)
            result = await operation(node)
            await node.messaging.published()
            return result
    raise CommandError(f"timed out after {args.timeout:g} s")


def run_send(args: argparse.Namespace, out: Output) -> int:
    async def send(node: qdht.Node) -> tuple[int, str]:
        ident = await node.messaging.send(args.contact, args.text.encode())
        await node.messaging.flush()
        return ident, node.messaging.delivery_state(ident)

    ident, state = trio.run(_with_messaging, args, out, send)
    out.emit(f"{ident} {state}")
    return 0 if state == "stored" else 1


def run_inbox(args: argparse.Namespace, out: Output) -> int:
    async def inbox(node: qdht.Node) -> list[IncomingMessage]:
        await node.messaging.poll()
        await node.messaging.poll()
        await node.messaging.flush()  # deletions of the slots read
        if not args.new:
            return node.messaging.inbox()
        new = []
        with trio.move_on_after(0):
            async for message in node.messaging.incoming():
                new.append(message)
        return new

    for message in trio.run(_with_messaging, args, out, inbox):
        line = {
            "id": message.id,
            "sender": message.sender.hex(),
            "time": message.time,
            "text": message.data.decode("utf-8", "replace"),
        }
        out.emit(json.dumps(line, ensure_ascii=False))
    return 0
