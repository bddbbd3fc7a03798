"""What each placement scheme costs the network in storage (13-models.md §5).

``naive``: every chunk an immutable record on the k closest nodes of its key,
plus the fetchers' own copies.  ``provider``: the chunks only on the ``seeds``
holders the publisher arranges and on the fetchers, plus one provider record
(a signed set entry with its public key) per holder on the k closest nodes of
the model's provider topic.
"""

from __future__ import annotations

from typing import Final

import attrs

from qdht.errors import ConfigError
from qdht.wire import Address, Contact, ImmutableRecord, ModelProvider, SetEntry, encode

__all__ = ["DHT_KEY_OVERHEAD", "StorageCost", "provider_record_size", "storage_cost"]

#: Bytes a holder spends per stored record besides its encoding: the 32-byte key.
DHT_KEY_OVERHEAD: Final = 32


def provider_record_size(chunks: int, *, partial: bool = False) -> int:
    """Stored bytes of one provider entry (with ``pk``, one UDP address, a bitfield if partial)."""
    contact = Contact(bytes(32), (Address("udp", "198.51.100.1", 6881),))
    have = bytes((chunks + 7) // 8) if partial and chunks else None
    value = encode(ModelProvider(bytes(32), chunks, contact, have=have))
    topic = bytes(55)
    entry = SetEntry(topic, bytes(32), 2**32, value, 2**32, bytes(3309), bytes(1952))
    return len(encode(entry)) + DHT_KEY_OVERHEAD


@attrs.frozen
class StorageCost:
    """Bytes stored across the network for one model under each scheme."""

    model_bytes: int
    naive_bytes: int
    provider_bytes: int

    @property
    def naive_per_model_byte(self) -> float:
        return self.naive_bytes / self.model_bytes

    @property
    def provider_per_model_byte(self) -> float:
        return self.provider_bytes / self.model_bytes


def storage_cost(
    chunk_lengths: list[int], *, k: int = 20, fetchers: int = 0, seeds: int = 3
) -> StorageCost:
    """The storage of a model with chunks of ``chunk_lengths`` bytes under both schemes.

    naive = k·Σ(chunk record) + F·M; provider = r·M + F·M + (r + F)·k·P (§5.2).
    """
    if k < 1 or fetchers < 0 or seeds < 1:
        raise ConfigError("k and seeds must be at least 1, fetchers at least 0")
    model = sum(chunk_lengths)
    if model <= 0:
        raise ConfigError("the model must have at least one byte")
    stored = {n: len(encode(ImmutableRecord(bytes(n), 2**32))) for n in set(chunk_lengths)}
    naive = k * sum(stored[n] + DHT_KEY_OVERHEAD for n in chunk_lengths)
    provider_entry = provider_record_size(len(chunk_lengths))
    provider = (seeds + fetchers) * (model + k * provider_entry)
    return StorageCost(model, naive + fetchers * model, provider)
