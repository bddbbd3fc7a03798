"""The chunk store, publishing, serving and assembly (13-models.md §5.3, §6.3, §6.4).

A :class:`ChunkStore` is a directory of chunks, each in a file named by its
key and written only after its key was checked against its bytes (written to
a temporary name and renamed, so a crash never leaves a partial chunk under
a key).  It is what a node fetches into, resumes from, serves from and
announces: a new version of a model needs only the chunks whose keys the
store lacks.

:func:`assemble` writes the canonical safetensors file of a manifest from
the store, checking every chunk again as it copies it, into a temporary file
that is renamed onto the target only when complete.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy.typing as npt

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, DecodeError, ModelError
from qdht.models._chunks import DEFAULT_CHUNK_SIZE, chunk_arrays, chunk_file, chunk_key
from qdht.models._format import canonical_header
from qdht.models._manifest import (
    MANIFEST_LIMITS,
    TrustedPublishers,
    have_bitfield,
    manifest_record,
    model_record_key,
    sign_manifest,
    verify_manifest,
)
from qdht.wire import CHUNK_KEY_SIZE, Chunk, GetChunk, ModelManifest, MutableRecord, decode, encode

__all__ = ["ChunkStore", "Release", "assemble", "prepare_release"]


def _write_whole(path: Path, data: bytes | memoryview, *, mkdir: bool = True) -> None:
    """Write ``data`` under a temporary name and rename it: ``path`` is never partial."""
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


class ChunkStore:
    """Verified chunks on disk under ``directory/chunks/``, one file per key."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._root = Path(directory) / "chunks"
        self._root.mkdir(parents=True, exist_ok=True)
        self._drops: Counter[str] = Counter()
        self._served = 0
        #: Subdirectories known to exist (one mkdir per directory, not per chunk).
        self._made: set[str] = set()

    def _path(self, key: bytes) -> Path:
        if type(key) is not bytes or len(key) != CHUNK_KEY_SIZE:
            raise ConfigError(f"a chunk key is {CHUNK_KEY_SIZE} bytes")
        name = key.hex()
        return self._root / name[:2] / name

    def has(self, key: bytes) -> bool:
        """Whether the store holds the chunk ``key``."""
        return self._path(key).is_file()

    def put(self, key: bytes, data: bytes | memoryview) -> None:
        """Keep ``data`` under ``key``; ModelError ``bad-chunk`` if it is not that chunk."""
        if chunk_key(data) != key:
            raise ModelError("bad-chunk", f"data does not hash to {key.hex()[:16]}")
        path = self._path(key)
        if path.is_file():
            return
        fresh = path.parent.name not in self._made
        try:
            _write_whole(path, data, mkdir=fresh)
        except FileNotFoundError:  # the directory was removed behind our back
            _write_whole(path, data)
        self._made.add(path.parent.name)

    def load(self, key: bytes) -> bytes:
        """The chunk ``key``, checked; ModelError ``missing-chunk`` or ``corrupt-chunk``.

        A corrupted file is removed (and counted), so the chunk is fetched again.
        """
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise ModelError("missing-chunk", key.hex()[:16]) from None
        if chunk_key(data) != key:
            self._drops["corrupt-chunk"] += 1
            self.discard(key)
            raise ModelError("corrupt-chunk", key.hex()[:16])
        return data

    def get(self, key: bytes) -> bytes | None:
        """The chunk ``key`` if held and intact, else None (see :meth:`load`)."""
        try:
            return self.load(key)
        except ModelError:
            return None

    def discard(self, key: bytes) -> None:
        """Forget the chunk ``key``."""
        self._path(key).unlink(missing_ok=True)

    def held(self) -> Iterator[bytes]:
        """Every key held (in no particular order)."""
        for sub in self._root.iterdir():
            if sub.is_dir():
                for path in sub.iterdir():
                    if len(path.name) == 2 * CHUNK_KEY_SIZE and not path.name.startswith("."):
                        yield bytes.fromhex(path.name)

    def have(self, manifest: ModelManifest) -> bytes | None:
        """A provider record's ``have`` for ``manifest``: None when every chunk is held."""
        present = [self.has(key) for key in manifest.chunk_keys]
        return None if all(present) else have_bitfield(present)

    def serve(self, request: GetChunk) -> Chunk:
        """The answer to a ``get_chunk``: the chunk, or no ``data`` if not held (§5.3)."""
        data = self.get(request.key)
        if data is not None:
            self._served += 1
        return Chunk(request.rid, data)

    def keep_manifest(self, manifest: ModelManifest) -> None:
        """Keep ``manifest`` next to its chunks, so a restarted node resumes and serves it."""
        directory = (
            self._root.parent
            / "manifests"
            / model_record_key(manifest.publisher, manifest.name).hex()
        )
        _write_whole(directory / f"{manifest.version}.cbor", encode(manifest))

    def manifests(self, trusted: TrustedPublishers | Iterable[bytes]) -> list[ModelManifest]:
        """Every kept manifest that still verifies (§4.3); others are skipped and counted."""
        out = []
        for path in sorted((self._root.parent / "manifests").glob("*/*.cbor")):
            try:
                manifest = decode(
                    path.read_bytes(), limits=MANIFEST_LIMITS, expect=(ModelManifest,)
                )
                assert isinstance(manifest, ModelManifest)
                out.append(verify_manifest(manifest, trusted))
            except (DecodeError, ModelError):
                self._drops["bad-manifest"] += 1
        return out

    def stats(self) -> dict[str, Any]:
        return {"served": self._served, "drops": dict(self._drops)}


@attrs.frozen
class Release:
    """A model version ready to publish: the signed manifest and its mutable record."""

    manifest: ModelManifest
    record: MutableRecord


def prepare_release(
    key: MLDSAPrivateKey,
    *,
    name: str,
    version: int,
    source: Mapping[str, npt.NDArray[Any]] | str | os.PathLike[str],
    store: ChunkStore,
    expires: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    meta: Mapping[str, str] | None = None,
) -> Release:
    """Chunk ``source`` (arrays, or a safetensors file read chunk by chunk) into ``store``.

    The file's own ``__metadata__`` goes into the manifest's ``meta``, under
    ``meta`` given here.  The manifest is kept in ``store`` (and, if too
    large for one record, its pages too, §4.4).  The node then stores ``release.record`` under its
    key and announces itself as a provider (§5.2).
    """
    if isinstance(source, Mapping):
        tensors = chunk_arrays(source, chunk_size, store)
        merged = dict(meta or {})
    else:
        tensors, file_meta = chunk_file(source, chunk_size, store)
        merged = {**file_meta, **(meta or {})}
    manifest = sign_manifest(
        key, name=name, version=version, tensors=tensors, chunk_size=chunk_size, meta=merged
    )
    store.keep_manifest(manifest)
    return Release(manifest, manifest_record(key, manifest, expires=expires, pages=store))


def assemble(manifest: ModelManifest, store: ChunkStore, target: str | os.PathLike[str]) -> Path:
    """Write the manifest's canonical safetensors file (§2) to ``target`` from ``store``.

    Every chunk is checked against its key as it is copied; the file is
    written under a temporary name, flushed and renamed, so ``target`` never
    holds an unverified byte or a partial file.  ModelError ``missing-chunk``
    (or ``corrupt-chunk``, after removing the bad copy) if the store lacks one.
    """
    target = Path(target)
    temp = target.with_name(f".{target.name}.{os.getpid()}.partial")
    infos = [(t.name, t.dtype, t.shape) for t in manifest.tensors]
    try:
        with open(temp, "wb") as file:
            file.write(canonical_header(infos, dict(manifest.meta)))
            for tensor in manifest.tensors:
                for key in tensor.chunk_keys:
                    file.write(store.load(key))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target
