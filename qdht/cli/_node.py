"""``qdht node``: a long-running node that prints its contact URI and a periodic status line.

The first line on stdout is the node's contact URI alone (one line per
listen address, the first address first), so scripts can read it; status
lines follow every ``--status-interval`` seconds.  SIGINT or SIGTERM stops
the node cleanly with exit status 0.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any, Final

import attrs
import trio

import qdht
from qdht.cli._client import join
from qdht.cli._common import (
    CommandError,
    parse_contacts,
    read_passphrase,
    usage_error,
)
from qdht.cli._mixnet import add_mixnet_option, mixnet_config
from qdht.cli._output import Output, format_bytes
from qdht.config import IDENTITY_FILE
from qdht.errors import ConfigError, QdhtError, WrongPassphraseError
from qdht.identity import DEFAULT_PUZZLE_DIFFICULTY, Identity
from qdht.wire import Contact

__all__ = ["register"]

#: Where a node listens without --listen: qdht.Config's default (every IPv4
#: interface, advertised as the address that routes to the internet).
DEFAULT_LISTEN: Final = qdht.Config().listen
DEFAULT_STATUS_INTERVAL: Final = 30.0
#: Waits between bootstrap attempts while no bootstrap contact answers (seconds).
BOOTSTRAP_RETRY: Final = (2.0, 5.0, 15.0, 30.0, 60.0)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "node",
        help="run a node until Ctrl-C",
        description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None,
        parents=[common],
    )
    p.add_argument(
        "--listen",
        action="append",
        metavar="URI",
        help=f"address to listen on, udp://IP:PORT or ws://IP:PORT (repeatable; default "
        f"{' '.join(DEFAULT_LISTEN)}; port 0 picks a free port)",
    )
    p.add_argument(
        "--advertise",
        metavar="IP",
        help="the IP to put in the contact URI when listening on 0.0.0.0 or :: "
        "(default: the address of the interface that routes to the internet)",
    )
    p.add_argument(
        "--bootstrap",
        action="append",
        default=[],
        metavar="URI",
        help="contact URI of a node to join through, qdht+udp://IP:PORT/NODE-ID (repeatable)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"keep the identity ({IDENTITY_FILE}, created on first run) and data here; "
        "without it the node has a fresh identity and forgets everything when it stops",
    )
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrase of an encrypted key file")
    p.add_argument(
        "--difficulty",
        type=int,
        default=DEFAULT_PUZZLE_DIFFICULTY,
        help=f"the network's puzzle difficulty (default {DEFAULT_PUZZLE_DIFFICULTY})",
    )
    p.add_argument(
        "--status-interval",
        type=float,
        default=DEFAULT_STATUS_INTERVAL,
        metavar="SECONDS",
        help=f"print a status line this often (default {DEFAULT_STATUS_INTERVAL:g}; 0: never)",
    )
    p.add_argument(
        "--web",
        metavar="HOST:PORT",
        help="serve a live page of the node here (needs the web extra); off loopback it "
        "requires the access token printed at start",
    )
    p.add_argument(
        "--web-token",
        metavar="TOKEN",
        help="the page's access token (default: none on loopback, a fresh one elsewhere)",
    )
    p.add_argument(
        "--messaging",
        action="store_true",
        help="run the messaging layer: hold mailboxes for others and poll this node's own",
    )
    p.add_argument(
        "--models",
        action="store_true",
        help="run the model store: serve the models in DATA-DIR/models (needs qdht[models])",
    )
    p.add_argument(
        "--publish-model",
        type=Path,
        metavar="FILE",
        help="publish the safetensors FILE under this node's identity once joined, and serve "
        "it (implies --models)",
    )
    p.add_argument(
        "--model-name", default="model", metavar="NAME", help="the name of --publish-model"
    )
    p.add_argument(
        "--mix",
        action="store_true",
        help="run the mix role: epoch keys, a descriptor in the DHT, mixing (10-mixnet.md)",
    )
    p.add_argument(
        "--authority",
        action="store_true",
        help="sign the mix directory with this node's key (one of the --mixnet directory_keys)",
    )
    add_mixnet_option(p)
    p.set_defaults(run=run)


def _web_services(args: argparse.Namespace) -> list[Any]:
    """The web page's service factory when --web is given (imports the web extra)."""
    if args.web is None:
        if args.web_token is not None:
            raise usage_error("--web-token needs --web")
        return []
    try:
        from qdht.web import WebConfig, parse_web_address, web_service
    except ImportError as exc:
        raise CommandError(f"--web needs the web extra (pip install 'qdht[web]'): {exc}") from None
    try:
        host, port = parse_web_address(args.web)
        return [web_service(WebConfig(host=host, port=port, token=args.web_token))]
    except ConfigError as exc:
        raise usage_error(f"--web: {exc}") from None


def _models(args: argparse.Namespace) -> Any:
    """The ``ModelsConfig`` of ``--models`` / ``--publish-model``, or None."""
    if not (args.models or args.publish_model):
        return None
    from qdht.models import ModelsConfig  # the models extra: imported only when used

    return ModelsConfig()


def run(args: argparse.Namespace, out: Output) -> int:
    if args.status_interval < 0:
        raise usage_error("--status-interval must not be negative")
    bootstrap = parse_contacts(args.bootstrap)
    try:
        config = qdht.Config(
            listen=tuple(args.listen or DEFAULT_LISTEN),
            advertise_host=args.advertise,
            data_dir=args.data_dir,
            identity_passphrase=read_passphrase(args.passphrase_file),
            puzzle_difficulty=args.difficulty,
            models=_models(args),
        )
        if args.messaging:
            from qdht.messaging import MessagingConfig

            config = attrs.evolve(config, messaging=MessagingConfig())
    except ConfigError as exc:
        raise usage_error(str(exc)) from None
    if args.publish_model is not None and not args.publish_model.is_file():
        raise usage_error(f"--publish-model: no such file {args.publish_model}")
    services = _web_services(args)
    config = attrs.evolve(config, identity=_identity(config, args, out), services=services)
    if args.mix or args.authority or args.mixnet is not None:
        # A served node sends no anonymous requests: no client streams (a mix's
        # cover is its own loops, λ_M, as in Loopix).
        mixnet = mixnet_config(
            args.mixnet,
            mix=args.mix,
            authority=args.authority,
            lambda_payload=0.0,
            lambda_loop=0.0,
            lambda_drop=0.0,
            lambda_dummy_lookup=0.0,
        )
        try:
            config = attrs.evolve(config, mixnet=mixnet)
            if config.messaging is not None:
                # Without client streams its own mailbox requests could not leave
                # through mixes: it holds mailboxes, serves exit_mbox, asks directly.
                messaging = attrs.evolve(config.messaging, delivery="direct")
                config = attrs.evolve(config, messaging=messaging)
        except ConfigError as exc:
            raise usage_error(str(exc)) from None
        if args.authority:
            assert isinstance(config.identity, Identity)
            out.note(f"mixnet directory key: {config.identity.mldsa.public_key_bytes().hex()}")
    publish = (args.publish_model, args.model_name) if args.publish_model else None
    stopped_by = trio.run(_serve, config, bootstrap, args.status_interval, out, publish)
    out.note(f"stopped ({stopped_by})")
    return 0


def _identity(config: qdht.Config, args: argparse.Namespace, out: Output) -> Identity:
    """The identity in the data directory (created on first run), or a fresh one."""
    key_file = config.identity_path()
    created = key_file is not None and not key_file.exists()
    try:
        identity = config.load_identity()
    except WrongPassphraseError as exc:
        if args.passphrase_file is None:
            raise CommandError(f"{exc} (pass --passphrase-file FILE)") from None
        raise
    if created:
        out.stderr.write(f"qdht: created identity {identity.node_id.hex()} in {key_file}\n")
    return identity


#: A model to publish once joined: (file, name).
_Publish = tuple[Path, str] | None


async def _serve(
    config: qdht.Config,
    bootstrap: list[Contact],
    status_interval: float,
    out: Output,
    publish: _Publish = None,
) -> str:
    """Run the node until SIGINT or SIGTERM; return the signal's name."""
    stopped_by = ""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                nonlocal stopped_by
                async for signum in signals:
                    stopped_by = signal.Signals(signum).name
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch_signals)
            nursery.start_soon(_run_node, config, bootstrap, status_interval, out, publish)
    return stopped_by


async def _run_node(
    config: qdht.Config,
    bootstrap: list[Contact],
    status_interval: float,
    out: Output,
    publish: _Publish = None,
) -> None:
    async with qdht.open_node(config) as node:
        for i in range(len(node.contact.addresses)):
            out.emit(node.contact.to_uri(i))
        if "web" in node.services:
            # As Jupyter does: the address to open, with its token if one is needed.
            out.note(f"web page: {getattr(node.services.get('web').face, 'url', None)}")
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            if bootstrap or publish:
                nursery.start_soon(_join_and_publish, node, bootstrap, out, publish)
            if status_interval > 0:
                while True:
                    await trio.sleep(status_interval)
                    out.emit(_status_line(node, time.monotonic() - started))
            else:
                await trio.sleep_forever()


async def _join_and_publish(
    node: qdht.Node, bootstrap: list[Contact], out: Output, publish: _Publish
) -> None:
    if bootstrap:
        await _join(node, bootstrap, out)
    if publish is not None:
        path, name = publish
        try:
            manifest = await node.models.publish(name, path)
        except QdhtError as exc:
            # The chunks are in the store and served even when the DHT put failed.
            out.emit(f"model not published: {exc}")
            return
        out.emit(f"model published: {manifest.publisher.hex()}/{name} version {manifest.version}")


async def _join(node: qdht.Node, bootstrap: list[Contact], out: Output) -> None:
    """Bootstrap, retrying with growing pauses while no bootstrap contact answers."""
    attempt = 0
    while True:
        try:
            await join(node, bootstrap)
        except CommandError as exc:
            pause = BOOTSTRAP_RETRY[min(attempt, len(BOOTSTRAP_RETRY) - 1)]
            out.emit(f"{exc}; retrying in {pause:g} s")
            attempt += 1
            await trio.sleep(pause)
            continue
        size = node.stats()["routing_table_size"]
        out.emit(f"bootstrapped: {size} {'peer' if size == 1 else 'peers'} in the routing table")
        return


def _status_line(node: qdht.Node, uptime: float) -> str:
    stats = node.stats()
    lookups = stats["lookups"]
    return (
        f"status: up {uptime:.0f} s, peers {stats['routing_table_size']}, "
        f"sessions {stats['sessions']}, values {stats['storage'].get('records', 0)}, "
        f"rpcs in {sum(stats['rpcs_received'].values())} out {sum(stats['rpcs_sent'].values())}, "
        f"lookups {lookups.get('succeeded', 0)}/{lookups.get('started', 0)}, "
        f"sent {format_bytes(stats['bytes_sent'])}, drops {stats['drops_total']}"
    )
