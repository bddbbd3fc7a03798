"""Handshakes: PQNoise pqXX and pqIK over X-Wing, cookies, biscuits (``04-handshake.md``).

A section of :class:`~qdht.session.SessionEndpoint`: the initiator's
fragments and retransmissions, the stateless responder (cookies under load,
the biscuit that carries its state to the third message), early data, and
the keypairs a completed handshake installs.
"""

from __future__ import annotations

import hashlib
import hmac

from qdht.crypto.aead import ChaChaPoly
from qdht.errors import ConfigError, CryptoError, DecodeError, HandshakeError
from qdht.identity import compute_node_id, puzzle_ok
from qdht.session._events import (
    MessageReceived,
    SessionEstablished,
)
from qdht.session._noise import PQIK, PQXX, HandshakeState, SymmetricState
from qdht.session._peers import (
    _BISCUIT_PLAIN,
    _EXPECT_KIND,
    BISCUIT_SIZE,
    HS_OVERHEAD,
    KEEPALIVE_FRAME,
    Addr,
    Keypair,
    Peer,
    PendingHandshake,
    _addr_bytes,
    _addr_hash,
    _cookie_key,
    _EndpointBase,
    _Frag,
    _HsBuffer,
    _reason,
    _source_host,
    cookie_mac,
    logger,
)
from qdht.wire import (
    MAC_INPUT_HEAD,
    MAX_HS_FRAGMENTS,
    CookieReply,
    Hello,
    HsView,
    decode,
    dumps_canonical,
    encode_hs_fragment,
    parse_hello,
)

__all__: list[str] = []


class _Handshakes(_EndpointBase):
    """The handshake section of the endpoint (04-handshake.md)."""

    def _fragments(self, kind: int, sid: int, rid: int, body: bytes, key: bytes) -> list[HsView]:
        size = self.config.datagram_size - HS_OVERHEAD
        count = max(1, -(-len(body) // size))
        if count > MAX_HS_FRAGMENTS:
            raise ConfigError("datagram_size too small for a handshake message")
        frags = []
        for i in range(count):
            chunk = body[i * size : (i + 1) * size]
            mac1 = cookie_mac(
                key, MAC_INPUT_HEAD.pack(b"qdht-hs", kind, sid, rid, i, count) + chunk
            )
            frags.append(HsView(kind, sid, rid, i, count, chunk, mac1))
        return frags

    def _encode_hs(self, frag: HsView, cookie: bytes | None) -> bytes:
        mac2 = None if cookie is None else cookie_mac(cookie, frag.mac_input() + frag.mac1)
        return encode_hs_fragment(frag, mac2)

    def _emit_hs(self, frag: HsView, addr: Addr, cookie: bytes | None) -> None:
        self._emit(self._encode_hs(frag, cookie), addr)

    def _start_handshake(self, peer: Peer, now: float, *, early: bytes | None = None) -> None:
        sid = self._new_index()
        static = self._statics.get(peer.node_id)
        if static is not None:
            hs = HandshakeState(
                PQIK,
                initiator=True,
                prologue=self._prologue,
                s=self.identity.xwing,
                rs=static,
                kem=self._kem,
            )
            hello = Hello(
                self.config.protocol_version,
                self.identity.mldsa_public_hash,
                self.identity.nonce,
                early,
            )
            body = hs.write_message(dumps_canonical(hello.to_cbor()))
            kind = 5
            if early is not None and peer.queue:
                peer.queue.popleft()
        else:
            hs = HandshakeState(
                PQXX, initiator=True, prologue=self._prologue, s=self.identity.xwing, kem=self._kem
            )
            body = hs.write_message(b"")
            kind = 1
        pending = PendingHandshake(hs, sid, peer.node_id, peer.addr, now)
        pending.awaiting = _EXPECT_KIND[kind]
        pending.sent = self._fragments(kind, sid, 0, body, pending.mac1_key)
        pending.retry = self.config.handshake_retry
        pending.next_retry = now + pending.retry
        self._note_deadline(pending.next_retry)
        peer.handshake = pending
        self._by_index[sid] = pending
        self.counters["handshakes_started"] += 1
        for frag in pending.sent:
            self._emit_hs(frag, peer.addr, None)

    def _on_handshake_fragment(self, frag: _Frag, wire_len: int, addr: Addr, now: float) -> None:
        if frag.kind in (2, 4, 6):
            self._on_initiator_fragment(frag, addr, now)
            return
        # Responder-bound (kinds 1, 3, 5): no per-initiator state (04 §5).
        mac_data = frag.mac_input()
        if not hmac.compare_digest(cookie_mac(self._mac1_key, mac_data), frag.mac1):
            self.drops["bad-mac1"] += 1
            return
        if frag.kind in (1, 5):
            if frag.rid != 0:
                self.drops["bad-handshake"] += 1
                return
            if not self._check_load(frag, mac_data, addr, now):
                return
        key = (addr, frag.sid, frag.kind)
        entry = self._hs_buffer.get(key)
        if entry is None:
            entry = _HsBuffer(frag.count, now + self.config.handshake_timeout)
            self._note_deadline(entry.deadline)
            self._hs_buffer[key] = entry
        elif entry.count != frag.count:
            self.drops["bad-fragment"] += 1
            return
        if frag.index in entry.parts:
            self.drops["duplicate-fragment"] += 1
            return
        entry.parts[frag.index] = frag.body
        entry.nbytes += len(frag.body)
        entry.wire_bytes += wire_len
        self._hs_buffer_bytes += len(frag.body)
        if frag.index == 0:
            entry.first = frag
        cfg = self.config
        while (
            len(self._hs_buffer) > cfg.handshake_reassembly_slots
            or self._hs_buffer_bytes > cfg.handshake_reassembly_bytes
        ):
            oldest = next(iter(self._hs_buffer))
            self._evict_hs(oldest)
            self.drops["handshake-buffer-evicted"] += 1
        if key not in self._hs_buffer or len(entry.parts) < entry.count:
            return
        self._evict_hs(key)
        body = b"".join(entry.parts[i] for i in range(entry.count))
        if frag.kind == 1:
            self._respond_xx1(frag.sid, body, entry.wire_bytes, addr, now)
        elif frag.kind == 3:
            self._respond_xx3(frag.sid, frag.rid, body, addr, now)
        else:
            self._respond_ik1(frag.sid, body, entry.wire_bytes, addr, now)

    def _evict_hs(self, key: tuple[Addr, int, int]) -> None:
        entry = self._hs_buffer.pop(key)
        self._hs_buffer_bytes -= entry.nbytes

    def _check_load(self, frag: _Frag, mac_data: bytes, addr: Addr, now: float) -> bool:
        """Whether to process this first-message fragment (04 §5.2, §5.5).

        Under load a cookie (mac2) is demanded before any KEM work; then the
        per-address and global initiation buckets are charged (fragment 0 only).
        """
        second = int(now)
        if second != self._load_second:
            self._load_second = second
            self._load_count = 0
        if frag.index == 0:
            self._load_count += 1
        validated = False
        if frag.mac2 is not None:
            for secret in self._cookie_secret.candidates(now):
                cookie = cookie_mac(secret, _addr_bytes(addr))
                # Constant time: the cookie is secret (04-handshake.md §5.2).
                if hmac.compare_digest(cookie_mac(cookie, mac_data + frag.mac1), frag.mac2):
                    validated = True
                    break
        if not validated and self._load_count > self.config.under_load_handshakes_per_s:
            if frag.index == 0:
                self._send_cookie(frag, addr, now)
            self.drops["cookie-required"] += 1
            return False
        if frag.index != 0:
            return True
        if not self._hs_per_address.allow((_source_host(addr), validated), now):
            # A spoofer drains only the unvalidated bucket of the address it
            # forges; the real owner gets a cookie and continues with its own.
            if not validated:
                self._send_cookie(frag, addr, now)
            self.drops["handshake-rate-address"] += 1
            return False
        if not self._hs_global.allow(None, now):
            self.drops["handshake-rate-global"] += 1
            return False
        return True

    def _send_cookie(self, frag: _Frag, addr: Addr, now: float) -> None:
        """Answer a first-message fragment 0 with a cookie (about 80 bytes, never amplifying).

        Not rate limited: any per-address limit on cookies could be drained by
        a sender forging the address, locking its owner out.
        """
        secret = self._cookie_secret.current(now)
        cookie = cookie_mac(secret, _addr_bytes(addr))
        salt = self._rng(16)
        box_key = hashlib.blake2b(salt + frag.mac1, key=self._cookie_key, digest_size=32).digest()
        box = ChaChaPoly(box_key).encrypt(0, frag.mac1, cookie)
        self._emit(dumps_canonical(CookieReply(frag.sid, salt, box).to_cbor()), addr)
        self.counters["cookies_sent"] += 1

    def _send_reply(self, frags: list[HsView], received: int, addr: Addr) -> list[bytes] | None:
        """Send a reply to an unvalidated address within the amplification bound (04 §5)."""
        datagrams = [encode_hs_fragment(f) for f in frags]
        total = sum(map(len, datagrams))
        if total > self.config.amplification_factor * received:
            self.drops["amplification-limit"] += 1
            return None
        for d in datagrams:
            self._emit(d, addr)
        return datagrams

    def _verify_hello(self, static: bytes, payload: bytes) -> tuple[bytes, bytes | None]:
        """(proven node ID, pqIK early data) of the peer's hello (04 §6), or raise."""
        fields = parse_hello(payload)
        if fields is None:  # early data, or malformed: the strict decoder judges
            hello = decode(payload, expect=(Hello,))
            assert isinstance(hello, Hello)
            version, mldsa, nonce, early = hello.version, hello.mldsa, hello.nonce, hello.early
        else:
            (version, mldsa, nonce), early = fields, None
        if version != self.config.protocol_version:
            raise HandshakeError("version-mismatch")
        node_id = compute_node_id(static, mldsa, nonce)
        if not puzzle_ok(node_id, self.identity.difficulty):
            raise HandshakeError("bad-puzzle")
        return node_id, early

    def _respond_xx1(self, isid: int, body: bytes, received: int, addr: Addr, now: float) -> None:
        hs = HandshakeState(
            PQXX, initiator=False, prologue=self._prologue, s=self.identity.xwing, kem=self._kem
        )
        if hs.read_message(body) != b"":
            self.drops["bad-handshake"] += 1
            return
        msg2 = hs.write_message(self._hello)
        rsid = self._new_index()
        biscuit = self._seal_biscuit(hs.ss, isid, rsid, addr, now)
        frags = self._fragments(2, rsid, isid, biscuit + msg2, self._mac1_key)
        if self._send_reply(frags, received, addr) is not None:
            self.counters["responder_msg2"] += 1

    def _seal_biscuit(
        self, ss: SymmetricState, isid: int, rsid: int, addr: Addr, now: float
    ) -> bytes:
        ck, h, k, n = ss.snapshot()
        assert k is not None
        key = self._biscuit_key.current(now)
        self._biscuit_counter += 1
        header = bytes([self._biscuit_key.epoch]) + self._biscuit_counter.to_bytes(8, "big")
        plain = _BISCUIT_PLAIN.pack(ck, h, k, n, isid, rsid, now, _addr_hash(addr))
        return header + self._biscuit_key.aead(key).encrypt(self._biscuit_counter, header, plain)

    def _open_biscuit(
        self, biscuit: bytes, now: float
    ) -> tuple[int, tuple[bytes, bytes, bytes, int, int, int, float, bytes]] | None:
        header = biscuit[:9]
        counter = int.from_bytes(biscuit[1:9], "big")
        for secret in self._biscuit_key.candidates(now):
            try:
                plain = self._biscuit_key.aead(secret).decrypt(counter, header, biscuit[9:])
            except CryptoError:
                continue
            return counter, _BISCUIT_PLAIN.unpack(plain)
        return None

    def _respond_xx3(self, isid: int, rsid: int, body: bytes, addr: Addr, now: float) -> None:
        if len(body) <= BISCUIT_SIZE:
            self.drops["truncated"] += 1
            return
        opened = self._open_biscuit(body[:BISCUIT_SIZE], now)
        if opened is None:
            self.drops["bad-biscuit"] += 1
            return
        counter, (ck, h, k, n, b_isid, b_rsid, created, addr_hash) = opened
        if (b_isid, b_rsid) != (isid, rsid) or addr_hash != _addr_hash(addr):
            self.drops["bad-biscuit"] += 1
            return
        if now - created > self.config.handshake_timeout:
            self.drops["expired-biscuit"] += 1
            return
        digest = hashlib.blake2b(body, digest_size=16).digest()
        seen = self._accepted_biscuits.get(counter)
        if seen is not None or counter <= self._biscuit_floor:
            kp = self._by_index.get(seen[1]) if seen is not None else None
            if seen is not None and isinstance(kp, Keypair) and kp.reply and seen[2] == digest:
                for d in kp.reply:  # our msg4 was lost: the initiator retransmitted msg3
                    self._emit(d, addr)
                self.counters["handshake_retransmits"] += 1
            else:
                self.drops["replayed-biscuit"] += 1
            return
        hs = HandshakeState.resume(
            PQXX, SymmetricState.restore(ck, h, k, n), 2, s=self.identity.xwing, kem=self._kem
        )
        try:
            payload = hs.read_message(body[BISCUIT_SIZE:])
            assert hs.rs is not None
            node_id, _ = self._verify_hello(hs.rs, payload)
        except (HandshakeError, DecodeError) as exc:
            self.drops[_reason(exc)] += 1
            return
        if rsid in self._by_index or node_id == self.node_id:
            self.drops["bad-handshake"] += 1
            return
        if self._is_refused(node_id, now):
            return
        if not self._hs_per_node.allow(node_id, now):
            self.drops["handshake-rate-node"] += 1
            return
        self._remember_biscuit(counter, now, rsid, digest)
        msg4 = hs.write_message(b"")
        frags = self._fragments(4, rsid, isid, msg4, self._mac1_key)
        datagrams = [self._encode_hs(f, None) for f in frags]
        for d in datagrams:  # the biscuit proved the address receives our packets
            self._emit(d, addr)
        self._install_responder_keys(hs, node_id, rsid, isid, addr, now, datagrams, digest)

    def _remember_biscuit(self, counter: int, now: float, rsid: int, digest: bytes) -> None:
        table = self._accepted_biscuits
        table[counter] = (now, rsid, digest)
        while table:
            oldest_counter, (when, _, _) = next(iter(table.items()))
            if len(table) <= self.config.biscuit_replay_entries and (
                now - when <= self.config.handshake_timeout
            ):
                break
            del table[oldest_counter]
            self._biscuit_floor = max(self._biscuit_floor, oldest_counter)

    def _respond_ik1(self, isid: int, body: bytes, received: int, addr: Addr, now: float) -> None:
        digest = hashlib.blake2b(body, digest_size=16).digest()
        hs = HandshakeState(
            PQIK, initiator=False, prologue=self._prologue, s=self.identity.xwing, kem=self._kem
        )
        try:
            payload = hs.read_message(body)
            assert hs.rs is not None
            node_id, early = self._verify_hello(hs.rs, payload)
        except (HandshakeError, DecodeError) as exc:
            self.drops[_reason(exc)] += 1
            return
        if node_id == self.node_id:
            self.drops["bad-handshake"] += 1
            return
        peer = self._peers.get(node_id)
        if peer is not None and peer.next is not None and peer.next.reply_key == digest:
            if peer.next.reply:  # a retransmitted (or replayed) first message
                for d in peer.next.reply:
                    self._emit(d, addr)
            self.counters["handshake_duplicates"] += 1
            return
        if self._is_refused(node_id, now):
            return
        if not self._hs_per_node.allow(node_id, now):
            self.drops["handshake-rate-node"] += 1
            return
        rsid = self._new_index()
        msg2 = hs.write_message(self._hello)
        frags = self._fragments(6, rsid, isid, msg2, self._mac1_key)
        datagrams = self._send_reply(frags, received, addr)
        if datagrams is None:
            return
        self._install_responder_keys(hs, node_id, rsid, isid, addr, now, datagrams, digest)
        if early is not None:
            self._event(MessageReceived(node_id, addr, early, early=True))

    def _install_responder_keys(
        self,
        hs: HandshakeState,
        node_id: bytes,
        rsid: int,
        isid: int,
        addr: Addr,
        now: float,
        reply: list[bytes],
        digest: bytes,
    ) -> None:
        peer = self._peer_for(node_id, addr)
        assert hs.rs is not None
        self._remember_static(node_id, hs.rs)
        if peer.current is None:
            peer.addr = addr
        keys = hs.split()
        if self.keylog is not None:
            self._log_keys(node_id, rsid, isid, keys, hs.handshake_hash)
        kp = Keypair(keys, rsid, isid, now, False, self.config.replay_window, peer)
        self._note_deadline(now + self.config.reject_after_time)
        kp.reply, kp.reply_key = reply, digest
        kp.pending = (hs.pattern, hs.handshake_hash)
        if peer.next is not None:
            self._forget_keypair(peer.next)
        peer.next = kp
        self._by_index[rsid] = kp
        self.counters["handshakes_responded"] += 1

    def _on_initiator_fragment(self, frag: _Frag, addr: Addr, now: float) -> None:
        pending = self._by_index.get(frag.rid)
        if not isinstance(pending, PendingHandshake) or pending.awaiting != frag.kind:
            self.drops["unknown-index"] += 1
            return
        mac_data = frag.mac_input()
        if not hmac.compare_digest(cookie_mac(pending.mac1_key, mac_data), frag.mac1):
            self.drops["bad-mac1"] += 1
            return
        if pending.parts and (
            pending.parts_count != frag.count or pending.remote_index != frag.sid
        ):
            # A reply to a retransmission: the newest reply replaces the partial one.
            pending.parts = {}
        if frag.index in pending.parts:
            self.drops["duplicate-fragment"] += 1
            return
        pending.parts[frag.index] = frag.body
        pending.parts_count = frag.count
        pending.remote_index = frag.sid
        if len(pending.parts) < frag.count:
            return
        body = b"".join(pending.parts[i] for i in range(frag.count))
        pending.parts = {}
        peer = self._peers.get(pending.node_id)
        assert peer is not None
        assert peer.handshake is pending
        hs = pending.hs
        biscuit = b""
        if frag.kind == 2:
            if len(body) <= BISCUIT_SIZE:
                self.drops["truncated"] += 1
                return
            biscuit, body = body[:BISCUIT_SIZE], body[BISCUIT_SIZE:]
        try:
            payload = hs.read_message(body)
        except HandshakeError:
            self.drops["bad-handshake"] += 1
            return
        if frag.kind in (2, 6):
            assert hs.rs is not None
            try:
                node_id, _ = self._verify_hello(hs.rs, payload)
            except (HandshakeError, DecodeError) as exc:
                self._fail(peer, _reason(exc))
                return
            if node_id != pending.node_id:
                self._fail(peer, "wrong-identity")
                return
            self._remember_static(node_id, hs.rs)
        if frag.kind == 2:
            msg3 = hs.write_message(self._hello)
            pending.sent = self._fragments(
                3, pending.sid, frag.sid, biscuit + msg3, pending.mac1_key
            )
            pending.awaiting = 4
            pending.retry = self.config.handshake_retry
            pending.next_retry = now + pending.retry
            self._note_deadline(pending.next_retry)
            for f in pending.sent:
                self._emit_hs(f, pending.addr, None)
            return
        # kind 4 (pqXX) or 6 (pqIK): complete.
        keys = hs.split()
        if self.keylog is not None:
            self._log_keys(peer.node_id, pending.sid, frag.sid, keys, hs.handshake_hash)
        kp = Keypair(keys, pending.sid, frag.sid, now, True, self.config.replay_window, peer)
        self._note_deadline(now + self.config.reject_after_time)
        self._by_index[pending.sid] = kp
        peer.handshake = None
        peer.addr = addr
        self._promote(peer, kp)
        self.counters["handshakes_completed"] += 1
        self._event(SessionEstablished(peer.node_id, addr, True, hs.pattern, hs.handshake_hash))
        queue, peer.queue = peer.queue, None
        if queue:
            for payload_ in queue:
                self._send_payload(kp, payload_)
        else:
            self._send_frame(kp, KEEPALIVE_FRAME)

    def _log_keys(
        self, peer_id: bytes, local: int, remote: int, keys: tuple[bytes, bytes], hh: bytes
    ) -> None:
        """One key log line (09-keylog.md), before any packet uses the keys."""
        from qdht.session._keylog import KeyLogEntry  # only with a key log (issue 19)

        assert self.keylog is not None
        line = KeyLogEntry(peer_id, local, remote, keys[0], keys[1], hh).line()
        try:
            self.keylog(line)
        except Exception:  # a broken hook must not break the session
            logger.exception("key log hook failed")

    def _promote(self, peer: Peer, kp: Keypair) -> None:
        if peer.previous is not None:
            self._forget_keypair(peer.previous)
        peer.previous = peer.current
        peer.current = kp

    def _on_cookie(self, packet: CookieReply, addr: Addr, now: float) -> None:
        pending = self._by_index.get(packet.rid)
        if not isinstance(pending, PendingHandshake) or pending.awaiting not in (2, 6):
            self.drops["unknown-index"] += 1
            return
        mac1 = pending.sent[0].mac1
        box_key = hashlib.blake2b(
            packet.salt + mac1, key=_cookie_key(pending.node_id), digest_size=32
        ).digest()
        try:
            pending.cookie = ChaChaPoly(box_key).decrypt(0, mac1, packet.box)
        except CryptoError:
            self.drops["bad-cookie"] += 1
            return
        self.counters["cookies_received"] += 1
        for f in pending.sent:
            self._emit_hs(f, pending.addr, pending.cookie)
