"""Transport: data packets, frames, fragmentation and rekeying (``protocol-spec/05-transport.md``).

A section of :class:`~qdht.session.SessionEndpoint`: sealing and opening data
packets with counter nonces and the replay window, messages cut into
fragments and reassembled under per-peer and global caps, keepalives, close
frames and rekeying.
"""

from __future__ import annotations

from qdht.errors import CryptoError, DecodeError
from qdht.session._events import (
    MessageReceived,
    SessionEstablished,
)
from qdht.session._handshakes import _Handshakes
from qdht.session._peers import (
    _DATA_AD,
    _FRAMES,
    _MAX_PARTIAL_MESSAGES,
    _REKEY_JITTER,
    KEEPALIVE_FRAME,
    Addr,
    Keypair,
    Peer,
    Reassembly,
)
from qdht.wire import (
    CloseFrame,
    FragmentFrame,
    MessageFrame,
    decode,
    encode_data_packet,
    encode_frag_frame,
    encode_msg_frame,
    parse_frame,
)

__all__: list[str] = []


class _Frames(_Handshakes):
    """The transport section of the endpoint (05-transport.md)."""

    def _send_payload(self, kp: Keypair, payload: bytes) -> None:
        chunk = self._chunk
        if len(payload) <= chunk:
            self._send_frame(kp, encode_msg_frame(payload))
            return
        peer = kp.peer
        msg_id = peer.next_msg_id
        if msg_id < 0:
            # A random start, so that the ids of a restarted node do not meet
            # the receiver's partial messages from before the restart (05 §4).
            msg_id = int.from_bytes(self._rng(4), "big")
        peer.next_msg_id = msg_id + 1
        count = -(-len(payload) // chunk)
        for i in range(count):
            part = payload[i * chunk : (i + 1) * chunk]
            self._send_frame(kp, encode_frag_frame(msg_id, i, count, part))

    def _send_frame(self, kp: Keypair, frame: bytes) -> None:
        n = kp.send_n
        kp.send_n = n + 1
        rid = kp.remote_index
        ct = kp.send.encrypt(n, _DATA_AD + rid.to_bytes(4, "big"), frame)
        self._emit(encode_data_packet(rid, n, ct), kp.peer.addr)

    def _maybe_rekey(self, peer: Peer, kp: Keypair, now: float) -> None:
        if peer.handshake is not None or peer.next is not None:
            return
        age = now - kp.created
        limit = self.config.rekey_after_time + (0.0 if kp.initiator else _REKEY_JITTER)
        if age >= limit or kp.send_n >= self.config.rekey_after_messages:
            self.counters["rekeys"] += 1
            self._start_handshake(peer, now)

    def _on_data(self, rid: int, n: int, ct: bytes, addr: Addr, now: float) -> None:
        kp = self._by_index.get(rid)
        if not isinstance(kp, Keypair):
            self.drops["unknown-index"] += 1
            return
        if self._refused and self._is_refused(kp.peer.node_id, now):
            self._authenticated = True  # a known session's packet: not a reason to mute
            if addr == kp.peer.addr:
                self._block(addr, self._refused[kp.peer.node_id])
            return
        if now - kp.created >= self.config.reject_after_time:
            self.drops["expired-keys"] += 1
            return
        reason = kp.window.check(n)
        if reason is not None:
            self.drops[reason] += 1
            return
        try:
            plain = kp.recv.decrypt(n, _DATA_AD + rid.to_bytes(4, "big"), ct)
        except CryptoError:
            self.drops["bad-tag"] += 1
            return
        kp.window.mark(n)
        self._authenticated = True
        peer = kp.peer
        if self._peers.get(peer.node_id) is not peer:
            self.drops["unknown-index"] += 1
            return
        if not kp.confirmed:
            kp.confirmed = True
            pattern, hs_hash = kp.pending or ("", b"")
            kp.reply = kp.reply_key = kp.pending = None
            if peer.next is kp:
                peer.next = None
            self._promote(peer, kp)
            self.counters["handshakes_completed"] += 1
            self._event(SessionEstablished(peer.node_id, addr, False, pattern, hs_hash))
            if peer.queue:
                queue, peer.queue = peer.queue, None
                for payload in queue:
                    self._send_payload(kp, payload)
        peer.addr = addr
        if plain == KEEPALIVE_FRAME:  # what confirms every handshake: skip the decoders
            return
        fast = parse_frame(plain)
        if fast is not None:
            if fast[2] == 1:
                self._event(MessageReceived(peer.node_id, addr, fast[3]))
            else:
                self._on_fragment(peer, *fast, addr, now)
            return
        try:
            frame = decode(plain, expect=_FRAMES)
        except DecodeError:
            self.drops["bad-frame"] += 1
            return
        if type(frame) is MessageFrame:
            self._event(MessageReceived(peer.node_id, addr, frame.payload))
        elif type(frame) is FragmentFrame:
            self._on_fragment(
                peer, frame.msg_id, frame.index, frame.count, frame.payload, addr, now
            )
        elif type(frame) is CloseFrame:
            self._remove_peer(peer, "closed-by-peer")

    def _on_fragment(
        self,
        peer: Peer,
        msg_id: int,
        index: int,
        count: int,
        chunk: bytes,
        addr: Addr,
        now: float,
    ) -> None:
        cfg = self.config
        if peer.reassembly is None:
            peer.reassembly = {}
        entry = peer.reassembly.get(msg_id)
        if entry is None:
            if len(peer.reassembly) >= _MAX_PARTIAL_MESSAGES:
                self._evict_oldest_partial(peer)
            entry = Reassembly(count, now + cfg.reassembly_timeout)
            self._note_deadline(entry.deadline)
            peer.reassembly[msg_id] = entry
        elif entry.count != count:
            self.drops["bad-fragment"] += 1
            return
        if index in entry.parts:
            self.drops["duplicate-fragment"] += 1
            return
        size = len(chunk)
        if entry.nbytes + size > cfg.max_message_size:
            self._drop_reassembly(peer, msg_id)
            self.drops["oversized"] += 1
            return
        # Over a cap, the peer's oldest partial messages go first: a message
        # that stalls has most likely lost a fragment, newer ones may complete.
        while (
            peer.reasm_bytes + size > cfg.reassembly_peer_bytes
            or self._reasm_global + size > cfg.reassembly_global_bytes
        ):
            oldest = next(iter(peer.reassembly))
            if oldest == msg_id:
                self.drops["reassembly-full"] += 1
                if not entry.parts:
                    self._drop_reassembly(peer, msg_id)
                return
            self._evict_oldest_partial(peer)
        entry.parts[index] = chunk
        entry.nbytes += size
        peer.reasm_bytes += size
        self._reasm_global += size
        if len(entry.parts) == entry.count:
            payload = b"".join(entry.parts[i] for i in range(entry.count))
            self._drop_reassembly(peer, msg_id)
            self._event(MessageReceived(peer.node_id, addr, payload))

    def _evict_oldest_partial(self, peer: Peer) -> None:
        assert peer.reassembly
        self._drop_reassembly(peer, next(iter(peer.reassembly)))
        self.drops["reassembly-evicted"] += 1

    def _drop_reassembly(self, peer: Peer, msg_id: int) -> None:
        assert peer.reassembly is not None
        entry = peer.reassembly.pop(msg_id)
        peer.reasm_bytes -= entry.nbytes
        self._reasm_global -= entry.nbytes
        if not peer.reassembly:
            peer.reassembly = None
