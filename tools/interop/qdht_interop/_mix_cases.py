"""Mix cases (``protocol-spec/10-mixnet.md``): a target mix forwards, drops, lives.

The target runs the mix role when the harness sets ``QDHT_MIX=1`` (an
optional part of the target contract); it publishes its descriptor in the
harness's network (§14.3), where the cases read its current epoch key.  A
probe then plays the next hop: it hands the target 3-hop packets whose
second and third hops are the probe itself, under an X-Wing key of the
case's own.  A target without a descriptor makes the cases UNIMPLEMENTED.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

import trio

from qdht.crypto import xwing
from qdht.errors import DecodeError, LookupFailedError, RPCError
from qdht.mixnet import (
    DESCRIPTOR_SALT,
    KIND_MESSAGE,
    MIXES_TOPIC,
    Forward,
    Geometry,
    MixnetConfig,
    PathHop,
    create_packet,
    encode_payload,
    epoch_of,
    unwrap,
    verify_descriptor,
)
from qdht.wire import MixDescriptor, MixPacket, Ping, Pong, decode, encode, mutable_key, new_rid
from qdht_interop._cases import ANSWER_TIMEOUT, SILENCE, Context, Notes, case, describe
from qdht_interop._grades import CaseFailed, CaseUnimplemented
from qdht_interop._probe import Probe

__all__: list[str] = []  # cases register themselves with @case

#: Seconds the cases wait for the target's descriptor to appear in the DHT.
DESCRIPTOR_WAIT: Final = 12.0
#: The delay the first hop is told to hold each packet (milliseconds).
HOLD_MS: Final = 400
#: The network's parameters the harness assumes (the defaults: §9).
NETWORK: Final = MixnetConfig()


async def _target_key(ctx: Context, notes: Notes) -> bytes:
    """The target's X-Wing key of the current epoch, from its descriptor in the DHT."""
    if not ctx.network:
        raise CaseFailed("harness: no network was started")
    node = ctx.network[0]
    deadline = trio.current_time() + DESCRIPTOR_WAIT
    while trio.current_time() < deadline:
        try:
            entries = await node.get_set(MIXES_TOPIC)
            for entry in entries:
                if entry.owner is None:
                    continue
                record = await node.get_record(mutable_key(entry.owner, DESCRIPTOR_SALT))
                if record is None or record.value is None:
                    continue
                try:
                    descriptor = decode(record.value, expect=(MixDescriptor,))
                except DecodeError as exc:
                    raise CaseFailed(f"the target's descriptor does not decode: {exc}") from None
                assert type(descriptor) is MixDescriptor
                if descriptor.contact.node_id != ctx.target.node_id:
                    continue
                now = int(time.time())
                reason = verify_descriptor(descriptor, now=now, difficulty=ctx.difficulty)
                if reason is not None:
                    raise CaseFailed(f"the target's descriptor is refused: {reason}")
                key = descriptor.key_for(epoch_of(now, NETWORK.epoch_period))
                if key is None:
                    raise CaseFailed("the target's descriptor has no key for this epoch")
                notes.note(
                    f"the target's descriptor lists epochs {[e for e, _ in descriptor.keys]}"
                )
                return key
        except (LookupFailedError, RPCError):
            pass
        await trio.sleep(2.0)
    raise CaseUnimplemented(
        f"no mix descriptor of the target in the DHT after {DESCRIPTOR_WAIT:g} s (QDHT_MIX)"
    )


class _Hop:
    """The probe as the next two hops: a key of its own, packets built to pass it."""

    def __init__(self, probe: Probe, target_key: bytes, target_id: bytes) -> None:
        self.geometry = Geometry()
        self.key = xwing.XWingPrivateKey(os.urandom(32))
        self.probe_id = probe.identity.node_id
        self.target = PathHop(target_id, target_key, HOLD_MS)
        self.probe = probe

    def packet(self, data: bytes = b"interop") -> bytes:
        me = PathHop(self.probe_id, self.key.public_key_bytes(), 0)
        payload = encode_payload(self.geometry, KIND_MESSAGE, data)
        return create_packet(self.geometry, [self.target, me, me], self.probe_id, payload)

    def forwarded(self) -> list[bytes]:
        return [r.message.data for r in self.probe.messages if type(r.message) is MixPacket]

    async def send(self, data: bytes) -> None:
        await self.probe.send_payload(encode(MixPacket(data)))

    async def first(self, packet: bytes) -> float:
        """Send a valid ``packet``; the seconds until the target forwarded it."""
        started = trio.current_time()
        await self.send(packet)
        if not await self.probe.wait_for(lambda: bool(self.forwarded()), HOLD_MS / 1000 + 5.0):
            raise CaseFailed("the target did not forward a valid packet")
        return trio.current_time() - started


async def _alive(probe: Probe, after: str) -> None:
    answer = await probe.request(Ping(new_rid()), ANSWER_TIMEOUT)
    if not isinstance(answer, Pong):
        raise CaseFailed(f"after {after} the target does not answer PING ({describe(answer)})")


@case(
    "mix/8.2/1",
    "a target mix forwards a valid packet after its delay",
    network=True,
    timeout=DESCRIPTOR_WAIT + 20.0,
)
async def mix_forwards(ctx: Context, notes: Notes) -> None:
    key = await _target_key(ctx, notes)
    async with ctx.probe(notes) as probe:
        hop = _Hop(probe, key, ctx.target.node_id)
        held = await hop.first(hop.packet())
        if held < HOLD_MS / 1000 * 0.9:
            raise CaseFailed(f"forwarded after {held * 1000:.0f} ms, before its {HOLD_MS} ms delay")
        out: Any = unwrap(hop.geometry, hop.key, hop.forwarded()[0])
        if not isinstance(out, Forward):
            raise CaseFailed(f"the forwarded packet does not unwrap at the next hop: {out}")
        notes.note(f"forwarded after {held * 1000:.0f} ms (delay {HOLD_MS} ms); it unwraps")


@case(
    "mix/6.2/1",
    "a target mix drops replayed, tampered and wrong-size packets, and lives",
    network=True,
    timeout=DESCRIPTOR_WAIT + 40.0,
)
async def mix_drops(ctx: Context, notes: Notes) -> None:
    key = await _target_key(ctx, notes)
    async with ctx.probe(notes) as probe:
        hop = _Hop(probe, key, ctx.target.node_id)
        packet = hop.packet()
        await hop.first(packet)
        wait = HOLD_MS / 1000 + SILENCE
        bad = {
            "a replay": packet,
            "a tampered header": _flip(hop.packet(), 100),
            "a packet of the wrong size": hop.packet()[:-1],
            "a changed version": b"\x00\x02" + hop.packet()[2:],
        }
        for what, data in bad.items():
            before = len(hop.forwarded())
            await hop.send(data)
            await trio.sleep(wait)
            if len(hop.forwarded()) != before:
                raise CaseFailed(f"the target forwarded {what}")
            await _alive(probe, what)
        notes.note(f"dropped: {', '.join(bad)}; the target answers PING after each")
        # A mid-path mix cannot see payload tampering (LIONESS, §6.3): the exit does.


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]
