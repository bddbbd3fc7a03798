"""The ``models`` service on a node: ``node.models`` (13-models.md §8).

:func:`models_service` builds the service from ``Config.models``: the
sans-IO :class:`~qdht.models.ModelsCore` (chunk serving and transfer) and
its Trio face, :class:`ModelsFace`, which does the DHT side through the
node's public API: manifests as the publisher's mutable record, provider
records as set entries, versions by ``get`` and ``watch``.  The service's
task tree serves chunks and re-announces what the node holds before its
provider records expire; every fetch runs in the caller's task, which the
node's nursery outlives.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy.typing as npt
import trio

from qdht.errors import ConfigError, LookupFailedError, ModelError, NodeStateError, RPCError
from qdht.models._chunks import chunk_lengths
from qdht.models._fetch import Progress
from qdht.models._manifest import (
    TrustedPublishers,
    manifest_from_pages,
    manifest_from_record,
    manifest_ref,
    model_record_key,
    model_salt,
    pages_root,
    provider_from_entry,
    provider_topic,
)
from qdht.models._service import (
    FetchEnded,
    FetchHolderDropped,
    FetchPenalty,
    FetchProgress,
    FetchStalled,
    ModelsConfig,
    ModelsCore,
    ServeReady,
)
from qdht.models._store import ChunkStore, assemble, prepare_release
from qdht.node import Service, ServiceContext
from qdht.wire import (
    MLDSA_PUBLIC_KEY_SIZE,
    Contact,
    ManifestRef,
    ModelManifest,
    ModelProvider,
    MutableRecord,
    SetEntry,
    encode,
    owner_hash,
)

if TYPE_CHECKING:
    from qdht.node import Node

__all__ = ["FetchResult", "ModelsFace", "models_service"]

#: What a fetch reports to its ``progress`` callback.
ProgressCallback = Callable[[Progress], object]


@attrs.frozen
class FetchResult:
    """A finished fetch: the verified manifest, the assembled file (or None), bytes moved."""

    manifest: ModelManifest
    path: Path | None
    #: Chunk bytes received from holders in this fetch (verified or not).
    received_bytes: int
    #: Model bytes that were in the store already (resume, earlier versions).
    reused_bytes: int


class _Waiting:
    __slots__ = ("events", "wake")

    def __init__(self) -> None:
        self.events: list[object] = []
        self.wake = trio.Event()


def _owner(publisher: bytes) -> bytes:
    if type(publisher) is not bytes or len(publisher) not in (32, MLDSA_PUBLIC_KEY_SIZE):
        raise ConfigError(
            "publisher must be an owner hash (32 bytes) or an ML-DSA-65 public key "
            f"({MLDSA_PUBLIC_KEY_SIZE} bytes)"
        )
    return publisher if len(publisher) == 32 else owner_hash(publisher)


class ModelsFace:
    """``node.models``: publish, fetch, list and watch models (13-models.md §8)."""

    def __init__(self, context: ServiceContext, config: ModelsConfig) -> None:
        self.config = config
        self._temp: Path | None = None
        if config.store_dir is not None:
            directory = Path(config.store_dir)
        elif context.data_dir is not None:
            directory = context.data_dir / "models"
        else:
            directory = self._temp = Path(tempfile.mkdtemp(prefix="qdht-models-"))
        self.directory = directory
        self.store = ChunkStore(directory)
        self.identity = context.identity
        self.core = ModelsCore(context.identity.node_id, self.store, config)
        self._node: Node | None = None
        self._waiting: dict[int, _Waiting] = {}
        self._serve_wake = trio.Event()
        self._fetch_slots = trio.Semaphore(config.max_fetches)
        #: Models this node holds and announces: provider root → (value, seq).
        self._held: dict[bytes, ModelProvider] = {}
        self._announce_wake = trio.Event()

    # ------------------------------------------------------------ plumbing

    def on_event(self, event: object) -> None:
        if type(event) is ServeReady:
            self._serve_wake.set()
            return
        handle = getattr(event, "handle", None)
        waiting = self._waiting.get(handle) if type(handle) is int else None
        if waiting is not None:
            waiting.events.append(event)
            waiting.wake.set()

    def close(self) -> None:
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)

    @property
    def node(self) -> Node:
        if self._node is None:
            raise NodeStateError("the models service has not started (use it inside open_node)")
        return self._node

    def _trusted(self, extra: Iterable[bytes] = ()) -> TrustedPublishers:
        own = self.identity.mldsa.public_key_bytes()
        return TrustedPublishers([*self.config.trusted, own, *extra])

    async def serve(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """The serving task: answer waiting ``get_chunk`` requests in batches."""
        self._node = node
        task_status.started()
        while True:
            await self._serve_wake.wait()
            self._serve_wake = trio.Event()
            while self.core.serving:
                served = self.core.serve_pending(trio.current_time())
                await node.flush()
                if served:
                    await trio.lowlevel.checkpoint()
                else:  # every waiting peer is over its rate: wait for a token
                    await trio.sleep(1 / self.config.peer_rate)

    async def reannounce(self, node: Node, *, task_status: trio.TaskStatus[None]) -> None:
        """Announce the models in the store, then renew every provider record at half its life."""
        self._node = node
        task_status.started()
        if not self.config.announce:
            return
        for manifest in self.store.manifests(self._trusted()):
            self._hold(manifest)
        while True:
            failed = 0
            for provider in list(self._held.values()):
                failed += not await self._put_provider(provider)
            # A node that has not joined yet (or lost its peers) tries again soon.
            interval = self.config.provider_ttl / 2
            if failed:
                interval = min(interval, 12 * self.config.retry_interval)
            with trio.move_on_after(interval):
                await self._announce_wake.wait()
            self._announce_wake = trio.Event()

    def _hold(self, manifest: ModelManifest) -> list[ModelProvider]:
        """Remember ``manifest`` as held (and its pages, if paged); the records to announce."""
        contact = self.node.contact
        chunks = len(manifest.chunk_keys)
        providers = [ModelProvider(manifest.root, chunks, contact)]
        ref = manifest_ref(manifest)
        if ref is not None:
            providers.append(ModelProvider(pages_root(ref), len(ref.page_keys), contact))
        for provider in providers:
            self._held[provider.root] = provider
        self.core.held = len(self._held)
        return providers

    async def _put_provider(self, provider: ModelProvider) -> bool:
        node = self.node
        try:
            await node.put_set_entry(
                provider_topic(provider.root),
                encode(provider),
                seq=int(time.time() * 1000),
                ttl=self.config.provider_ttl,
            )
            self.core.announced += 1
            return True
        except (LookupFailedError, RPCError):
            self.core.drop("announce-failed")
            return False

    async def _announce(self, manifest: ModelManifest) -> None:
        if not self.config.announce:
            return
        for provider in self._hold(manifest):
            await self._put_provider(provider)

    # ------------------------------------------------------------ publishing

    async def publish(
        self,
        name: str,
        source: Mapping[str, npt.NDArray[Any]] | str | Path,
        *,
        version: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> ModelManifest:
        """Publish ``source`` (arrays, or a safetensors file) as model ``name`` of this node.

        The model is chunked into the store, its manifest signed with the
        node's ML-DSA-65 key and stored as its mutable record (seq =
        ``version``; default: one more than the newest known), and the node
        announces itself as a provider and serves the chunks.  Returns the
        manifest.  ModelError for a bad file, ConfigError for a bad name or
        a version not above the published one (``RecordRejectedError``
        ``stale`` when the DHT already holds a newer one).
        """
        node = self.node
        model_salt(name)  # checks the name
        key = model_record_key(self.identity.mldsa_public_hash, name)
        if version is None:
            version = 1 + max(
                [m.version for m in self._local(self.identity.mldsa_public_hash, name)]
                + [await self._network_seq(key)]
            )
        if type(version) is not int or version < 0:
            raise ConfigError(f"version must be a non-negative integer, got {version!r}")
        expires = int(time.time() + self.config.manifest_ttl)
        release = await trio.to_thread.run_sync(
            lambda: prepare_release(
                self.identity.mldsa,
                name=name,
                version=version,
                source=source,
                store=self.store,
                expires=expires,
                meta=meta,
            )
        )
        await node.put_mutable(
            release.record.value,
            salt=model_salt(name),
            seq=version,
            ttl=self.config.manifest_ttl,
        )
        await self._announce(release.manifest)
        return release.manifest

    async def _network_seq(self, key: bytes) -> int:
        try:
            found = await self.node.get_record(key)
        except LookupFailedError:  # nobody to ask: the put will say so
            return -1
        return -1 if found is None else found.seq

    def _local(self, publisher: bytes, name: str) -> list[ModelManifest]:
        return [
            m
            for m in self.store.manifests(self._trusted())
            if m.publisher == publisher and m.name == name
        ]

    # ------------------------------------------------------------ versions

    def local(self) -> list[ModelManifest]:
        """Every verified manifest in this node's store (models published or fetched here)."""
        return self.store.manifests(self._trusted())

    async def latest(
        self, publisher: bytes, name: str, *, trusted: Iterable[bytes] = ()
    ) -> ModelManifest | ManifestRef | None:
        """The newest version the network holds, verified (§4.3); None if there is none.

        ``publisher`` is an owner hash or a public key; a public key given
        here is trusted for this call, as are ``trusted``.  ModelError when
        the record holds a manifest that fails verification.
        """
        owner = _owner(publisher)
        extra = [*trusted, publisher] if len(publisher) != 32 else list(trusted)
        found = await self.node.get_record(model_record_key(owner, name))
        if found is None or found.deleted or not isinstance(found.record, MutableRecord):
            return None
        return manifest_from_record(found.record, self._trusted(extra), name=name)

    async def versions(
        self, publisher: bytes, name: str, *, trusted: Iterable[bytes] = ()
    ) -> list[int]:
        """The versions of (publisher, name) known: in the store, and the network's newest."""
        owner = _owner(publisher)
        extra = [*trusted, publisher] if len(publisher) != 32 else list(trusted)
        known = {
            m.version
            for m in self.store.manifests(self._trusted(extra))
            if m.publisher == owner and m.name == name
        }
        latest = await self.latest(publisher, name, trusted=trusted)
        if latest is not None:
            known.add(latest.version)
        return sorted(known)

    @asynccontextmanager
    async def watch(
        self, publisher: bytes, name: str, *, trusted: Iterable[bytes] = ()
    ) -> AsyncIterator[AsyncIterator[ModelManifest | ManifestRef]]:
        """New versions of (publisher, name) as they are published (``node.watch``).

        ``async with node.models.watch(pub, name) as versions: async for m in
        versions`` yields each verified manifest (or the reference of a paged
        one), the current one first; records that fail verification are
        skipped and counted (``models.bad-manifest``).
        """
        owner = _owner(publisher)
        extra = [*trusted, publisher] if len(publisher) != 32 else list(trusted)
        trust = self._trusted(extra)

        async with self.node.watch(model_record_key(owner, name)) as updates:

            async def versions() -> AsyncIterator[ModelManifest | ManifestRef]:
                async for update in updates:
                    record = update.record.record
                    if update.kind != "update" or not isinstance(record, MutableRecord):
                        continue
                    try:
                        yield manifest_from_record(record, trust, name=name)
                    except ModelError:
                        self.core.drop("bad-manifest")

            yield versions()

    # ------------------------------------------------------------ fetching

    async def fetch(
        self,
        publisher: bytes,
        name: str,
        *,
        version: int | None = None,
        into: str | Path | None = None,
        trusted: Iterable[bytes] = (),
        progress: ProgressCallback | None = None,
        announce: bool | None = None,
    ) -> FetchResult:
        """Fetch model ``name`` of ``publisher`` and write it to ``into`` (if given).

        ``publisher`` is an owner hash (trusted if its key is in
        ``ModelsConfig.trusted`` or ``trusted``) or a public key (trusted for
        this call).  ``version`` None takes the newest; an older one must be
        in the store.  Chunks already in the store are not fetched again
        (an interrupted fetch resumes, a new version moves only what
        changed); the others come from the model's providers, several at a
        time, each verified before it is written.  ``progress`` is called
        with each :class:`~qdht.models.Progress`.  The file is written only
        once complete (13-models.md §6.4).  Then the node announces itself
        as a provider (``announce``, default ``ModelsConfig.announce``).

        ModelError: ``not-found``, ``version-unavailable``, ``no-holders``
        (no provider could supply every chunk), or a §4.3 reason.
        """
        node = self.node
        owner = _owner(publisher)
        extra = [*trusted, publisher] if len(publisher) != 32 else list(trusted)
        trust = self._trusted(extra)
        async with self._fetch_slots:
            found = await node.get_record(model_record_key(owner, name))
            latest: ModelManifest | ManifestRef | None = None
            if found is not None and not found.deleted and isinstance(found.record, MutableRecord):
                latest = manifest_from_record(found.record, trust, name=name)
            if version is None or (latest is not None and latest.version == version):
                if latest is None:
                    raise ModelError("not-found", f"no model {name!r} of {owner.hex()[:16]}")
                received = 0
                if isinstance(latest, ManifestRef):
                    received += await self._transfer(latest, pages_root(latest), None)
                    manifest = manifest_from_pages(latest, self.store, trust)
                else:
                    manifest = latest
            else:
                kept = [m for m in self._local(owner, name) if m.version == version]
                if not kept:
                    newest = "none" if latest is None else str(latest.version)
                    raise ModelError(
                        "version-unavailable",
                        f"version {version} of {name!r} is not held here (the network's: {newest})",
                    )
                manifest, received = kept[0], 0
            self.store.keep_manifest(manifest)
            reused = sum(n for k, n in _pieces(manifest).items() if self.store.has(k))
            received += await self._transfer(manifest, manifest.root, progress)
            path = None
            if into is not None:
                target = Path(into)
                path = await trio.to_thread.run_sync(assemble, manifest, self.store, target)
        if self.config.announce if announce is None else announce:
            await self._announce(manifest)
        return FetchResult(manifest, path, received, reused)

    async def _providers(self, root: bytes, chunks: int) -> list[tuple[Contact, bytes | None]]:
        node = self.node
        out = []
        try:
            entries = await node.get_set(provider_topic(root))
        except LookupFailedError:
            return []
        for entry in entries:
            record = entry.record
            if not isinstance(record, SetEntry):
                continue
            try:
                provider = provider_from_entry(record, root, chunks)
            except ModelError as exc:
                self.core.drop(f"provider-{exc.reason}")
                continue
            out.append((provider.contact, provider.have))
        return out

    async def _transfer(
        self,
        manifest: ModelManifest | ManifestRef,
        root: bytes,
        progress: ProgressCallback | None,
    ) -> int:
        """Run one transfer in the core until every piece is in the store; bytes received."""
        node = self.node
        chunks = (
            len(manifest.page_keys)
            if isinstance(manifest, ManifestRef)
            else len(manifest.chunk_keys)
        )
        holders = await self._providers(root, chunks)
        core = self.core
        handle = core.start_fetch(manifest, holders, trio.current_time())
        waiting = self._waiting[handle] = _Waiting()
        retries = 0
        try:
            await node.flush()
            while True:
                await waiting.wake.wait()
                waiting.wake = trio.Event()
                events, waiting.events = waiting.events, []
                for event in events:
                    if type(event) is FetchProgress:
                        if progress is not None:
                            progress(event.progress)
                    elif type(event) is FetchPenalty:
                        node.core.reputation.offence(
                            event.node_id, event.offence, trio.current_time()
                        )
                    elif type(event) is FetchEnded:
                        return event.received_bytes
                    elif type(event) is FetchStalled:
                        while True:  # until a lookup finds a holder to ask
                            if retries >= self.config.max_retries:
                                raise ModelError(
                                    "no-holders",
                                    f"{event.missing} chunks of {root.hex()[:16]} found on "
                                    "no holder",
                                )
                            retries += 1
                            await trio.sleep(self.config.retry_interval)
                            more = await self._providers(root, chunks)
                            if core.add_holders(handle, more, trio.current_time()):
                                break
                        await node.flush()
                    else:
                        assert type(event) is FetchHolderDropped
        finally:
            core.cancel_fetch(handle)
            del self._waiting[handle]


def _pieces(manifest: ModelManifest) -> dict[bytes, int]:
    """Each distinct chunk key of ``manifest`` and its length."""
    return {
        key: length
        for tensor in manifest.tensors
        for key, length in zip(
            tensor.chunk_keys, chunk_lengths(tensor.nbytes, manifest.chunk_size), strict=True
        )
    }


def models_service(config: ModelsConfig) -> Callable[[ServiceContext], Service]:
    """The factory of the ``models`` service configured by ``config``."""
    if not isinstance(config, ModelsConfig):
        raise ConfigError(f"expected a qdht.models.ModelsConfig, got {type(config).__name__}")

    def factory(context: ServiceContext) -> Service:
        face = ModelsFace(context, config)
        return Service(
            "models",
            face.core,
            {"get_chunk", "chunk"},
            on_event=face.on_event,
            tasks=(face.serve, face.reannounce),
            close=face.close,
            face=face,
        )

    return factory
