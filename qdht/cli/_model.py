"""``qdht model publish``, ``fetch``, ``ls``: the model store from the command line.

``publish`` chunks a safetensors file into the data directory, signs its
manifest with ``--identity`` (the publisher's key file), stores it in the
DHT, announces itself as the model's provider and then serves the chunks
until Ctrl-C (``--no-serve``: exit at once; another holder must serve it).
``fetch PUBLISHER/NAME`` trusts the publisher it names (PUBLISHER is the
64-hex owner hash ``publish`` printed), fetches the chunks the data
directory lacks from the model's holders with a progress bar, and writes
the verified file; an interrupted fetch resumes.  ``ls`` lists the models
in the data directory, and with ``PUBLISHER/NAME`` and ``--bootstrap`` the
versions the network has.  Needs ``pip install 'qdht[models]'``.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio

import qdht
from qdht.cli._client import _add_common as add_client_options
from qdht.cli._client import _listen_for, join
from qdht.cli._common import (
    CommandError,
    default_data_dir,
    parse_contacts,
    parse_hex_id,
    read_passphrase,
    usage_error,
)
from qdht.cli._output import Output, format_bytes
from qdht.errors import ConfigError, ModelError
from qdht.wire import MLDSA_PUBLIC_KEY_SIZE, Contact, MutableRecord, owner_hash

if TYPE_CHECKING:
    from qdht.models import FetchResult, Progress

__all__ = ["register"]

DEFAULT_TIMEOUT: Final = 600.0
#: Where the publisher keys the command trusted are kept (``ls`` verifies with them).
PUBLISHERS_DIR: Final = "publishers"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    model = sub.add_parser(
        "model",
        help="publish, fetch and list models",
        description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None,
        parents=[common],
    )
    commands = model.add_subparsers(dest="model_command", metavar="COMMAND")

    publish = commands.add_parser(
        "publish",
        help="publish a safetensors file and serve it",
        description="Publish FILE as model --name of --identity, then serve it until Ctrl-C.",
        parents=[common],
    )
    publish.add_argument("file", type=Path, metavar="FILE", help="a .safetensors file")
    publish.add_argument("--name", required=True, help="the model's name (1..64 bytes)")
    publish.add_argument("--version", type=int, help="the version (default: the next one)")
    publish.add_argument(
        "--identity", type=Path, required=True, metavar="F", help="the publisher's key file"
    )
    publish.add_argument("--passphrase-file", metavar="FILE", help="passphrase of the key file")
    publish.add_argument(
        "--meta", action="append", default=[], metavar="KEY=VALUE", help="manifest metadata"
    )
    publish.add_argument(
        "--no-serve", action="store_true", help="exit once published instead of serving"
    )
    _add_common(publish, bootstrap_required=True)
    publish.set_defaults(run=run_publish)

    fetch = commands.add_parser(
        "fetch",
        help="fetch a model",
        description="Fetch model NAME of PUBLISHER (its 64-hex owner hash) into --out.",
        parents=[common],
    )
    fetch.add_argument("model", metavar="PUBLISHER/NAME")
    fetch.add_argument("--out", "-o", type=Path, metavar="F", help="default: NAME.safetensors")
    fetch.add_argument("--version", type=int, help="an older version held in the data dir")
    _add_common(fetch, bootstrap_required=True)
    fetch.set_defaults(run=run_fetch)

    ls = commands.add_parser(
        "ls",
        help="list models",
        description="List the models in the data directory; with PUBLISHER/NAME and "
        "--bootstrap, the versions known here and on the network.",
        parents=[common],
    )
    ls.add_argument("model", nargs="?", metavar="PUBLISHER/NAME")
    _add_common(ls, bootstrap_required=False)
    ls.set_defaults(run=run_ls)


def _add_common(p: argparse.ArgumentParser, *, bootstrap_required: bool) -> None:
    add_client_options(p, required=bootstrap_required, timeout=DEFAULT_TIMEOUT)
    p.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="chunk store and kept manifests (default: the qdht data directory's models/)",
    )


def _store_dir(args: argparse.Namespace) -> Path:
    directory: Path = args.data_dir if args.data_dir is not None else default_data_dir() / "models"
    return directory


def _parse_model(text: str) -> tuple[bytes, str]:
    publisher, sep, name = text.partition("/")
    if not sep or not name:
        raise usage_error("expected PUBLISHER/NAME (the publisher's 64-hex owner hash)")
    return parse_hex_id(publisher, what="PUBLISHER"), name


def _known_publishers(directory: Path) -> list[bytes]:
    keys = []
    for path in sorted((directory / PUBLISHERS_DIR).glob("*.pk")):
        data = path.read_bytes()
        if len(data) == MLDSA_PUBLIC_KEY_SIZE and owner_hash(data).hex() == path.stem:
            keys.append(data)
    return keys


def _remember_publisher(directory: Path, public_key: bytes) -> None:
    folder = directory / PUBLISHERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{owner_hash(public_key).hex()}.pk").write_bytes(public_key)


def _config(
    args: argparse.Namespace, contacts: list[Contact], *, client: bool, **identity: Any
) -> qdht.Config:
    from qdht.models import ModelsConfig  # the models extra: imported only when used

    directory = _store_dir(args)
    try:
        return qdht.Config(
            listen=_listen_for(contacts),
            client_mode=client,
            puzzle_difficulty=args.difficulty,
            models=ModelsConfig(
                trusted=tuple(_known_publishers(directory)),
                store_dir=str(directory),
                announce=not client,
            ),
            **identity,
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None


def _check(args: argparse.Namespace) -> list[Contact]:
    if not args.timeout > 0:
        raise usage_error("--timeout must be positive")
    return parse_contacts(args.bootstrap)


def run_publish(args: argparse.Namespace, out: Output) -> int:
    contacts = _check(args)
    meta = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise usage_error(f"--meta expects KEY=VALUE, got {item!r}")
        meta[key] = value
    if not args.file.is_file():
        raise CommandError(f"cannot read {args.file}: no such file")
    config = _config(
        args,
        contacts,
        client=False,
        identity=args.identity,
        identity_passphrase=read_passphrase(args.passphrase_file),
    )

    async def publish() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            with trio.move_on_after(args.timeout) as scope:
                async with qdht.open_node(config) as node:
                    await join(node, contacts)
                    manifest = await node.models.publish(
                        args.name, args.file, version=args.version, meta=meta
                    )
                    scope.deadline = float("inf")
                    _remember_publisher(_store_dir(args), node.identity.mldsa.public_key_bytes())
                    size = sum(t.nbytes for t in manifest.tensors)
                    out.emit(f"{manifest.publisher.hex()}/{manifest.name}")
                    out.note(
                        f"published {manifest.name} version {manifest.version}: "
                        f"{len(manifest.tensors)} tensors, {format_bytes(size)}, "
                        f"root {manifest.root.hex()[:16]}"
                    )
                    if args.no_serve:
                        return
                    out.note("serving the model until Ctrl-C")
                    async for _ in signals:
                        return
            if scope.cancelled_caught:
                raise CommandError(f"timed out after {args.timeout:g} s")

    _run(publish)
    return 0


def run_fetch(args: argparse.Namespace, out: Output) -> int:
    contacts = _check(args)
    owner, name = _parse_model(args.model)
    target = args.out if args.out is not None else Path(f"{name}.safetensors")
    config = _config(args, contacts, client=True)

    from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn
    from rich.progress import Progress as ProgressBar

    from qdht.models import model_record_key

    async def fetch() -> FetchResult:
        with trio.move_on_after(args.timeout):
            async with qdht.open_node(config) as node:
                await join(node, contacts)
                found = await node.get_record(model_record_key(owner, name))
                record = None if found is None else found.record
                if not isinstance(record, MutableRecord) or record.public_key is None:
                    raise CommandError(f"no model {name!r} of publisher {owner.hex()}")
                bar = ProgressBar(
                    "{task.description}",
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    console=out.err_console,
                    transient=False,
                )
                with bar:
                    task = bar.add_task(f"{name}", total=None)

                    def progress(p: Progress) -> None:
                        bar.update(task, completed=p.bytes_done, total=p.bytes_total)

                    result = await node.models.fetch(
                        record.public_key,
                        name,
                        version=args.version,
                        into=target,
                        progress=progress,
                    )
                _remember_publisher(_store_dir(args), record.public_key)
                return result
        raise CommandError(f"timed out after {args.timeout:g} s")

    result = _run(fetch)
    size = sum(t.nbytes for t in result.manifest.tensors)
    out.emit(str(result.path))
    out.note(
        f"fetched {result.manifest.name} version {result.manifest.version}: "
        f"{format_bytes(size)} ({format_bytes(result.received_bytes)} received, "
        f"{format_bytes(result.reused_bytes)} already here)"
    )
    return 0


def run_ls(args: argparse.Namespace, out: Output) -> int:
    from qdht.models import ChunkStore, model_record_key

    directory = _store_dir(args)
    if args.model is None:
        store = ChunkStore(directory)
        rows = [
            [
                f"{m.publisher.hex()[:16]}…/{m.name}",
                str(m.version),
                str(len(m.tensors)),
                format_bytes(sum(t.nbytes for t in m.tensors)),
                "yes" if store.have(m) is None else "partial",
            ]
            for m in store.manifests(_known_publishers(directory))
        ]
        out.table(f"models in {directory}", ["model", "version", "tensors", "size", "held"], rows)
        return 0
    owner, name = _parse_model(args.model)
    contacts = _check(args)
    if not contacts:
        raise usage_error("listing the versions of PUBLISHER/NAME needs --bootstrap")
    config = _config(args, contacts, client=True)

    async def versions() -> list[int]:
        with trio.move_on_after(args.timeout):
            async with qdht.open_node(config) as node:
                await join(node, contacts)
                found = await node.get_record(model_record_key(owner, name))
                record = None if found is None else found.record
                pk = record.public_key if isinstance(record, MutableRecord) else None
                return await node.models.versions(pk or owner, name)
        raise CommandError(f"timed out after {args.timeout:g} s")

    for version in _run(versions):
        out.emit(f"{owner.hex()}/{name} {version}")
    return 0


def _run(operation: Any) -> Any:
    try:
        return trio.run(operation)
    except ModelError as exc:
        raise CommandError(f"model refused: {exc}") from None
