"""The triple ratchet (11-messaging.md §4): Double Ratchet with header encryption plus ML-KEM.

The classical half is the Double Ratchet of Signal's specification (rev. 4,
§3.5 and §4 "header encryption") over X25519 with HKDF-SHA3-256 and
ChaCha20-Poly1305.  The post-quantum half follows SPQR's epochs without
chunking: one party puts an ML-KEM-768 encapsulation key in its headers, the
other answers with a ciphertext in its own, and both move to the next epoch
secret; the roles alternate.  Every message key is
``KDF(dr_mk, "mk", salt = epoch key of the sender's direction)``, so it needs
both the Double Ratchet's chain and the current epoch.

ML-KEM-768 rather than X-Wing: the X25519 half of X-Wing would repeat the
Double Ratchet's DH output for 32 more bytes and one more exchange per epoch.

All state lives in :class:`RatchetState`; :meth:`RatchetSession.decrypt`
works on a copy and only keeps it if the message authenticates, so a forged,
duplicated, too-far or tampered message leaves the session exactly as it was.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import attrs
from cryptography.hazmat.primitives.asymmetric import x25519

from qdht.crypto import sha3_256
from qdht.crypto.aead import ChaChaPoly
from qdht.crypto.backend import KEMPrivateKey, get_backend
from qdht.crypto.xwing import XWingPrivateKey
from qdht.errors import ConfigError, CryptoError, SessionError
from qdht.messaging._kdf import chain_step, derive
from qdht.wire import CT_SIZE, RatchetMessage, dumps_canonical, loads_canonical

__all__ = [
    "MAX_JUMP",
    "MAX_SKIPPED",
    "RatchetSession",
    "RatchetState",
    "SessionSecrets",
    "initiator_state",
    "responder_state",
]

#: Most messages a receiving chain may skip at once (SPQR's ``max_jump``).
MAX_JUMP: Final = 25_000
#: Most skipped message keys kept (SPQR's ``max_ooo_keys``); the oldest go first.
MAX_SKIPPED: Final = 2_000
#: Most header keys of old chains kept for skipped keys (each costs one trial decryption).
MAX_SKIPPED_CHAINS: Final = 16
#: Epoch secrets kept for late messages: the current one and four before it
#: (an epoch lasts about one round trip; a message later than that is lost).
MAX_EPOCHS: Final = 5

EK_SIZE: Final = 1184
MLKEM_CT_SIZE: Final = 1088
MLKEM_SEED_SIZE: Final = 64
#: dh ‖ pn ‖ n ‖ flags ‖ epoch ‖ kind (§4.3).
_HEADER: Final = struct.Struct(">32sIIBIB")
FLAG_PQ: Final = 0x01
FLAG_AUTH: Final = 0x02
KIND_NONE: Final = 0
KIND_EK: Final = 1
KIND_CT: Final = 2
_KIND_SIZE: Final = {KIND_NONE: 0, KIND_EK: EK_SIZE, KIND_CT: MLKEM_CT_SIZE}
_NONCE_SIZE: Final = 8
_MAX_COUNTER: Final = 2**32 - 1

Rng = Callable[[int], bytes]
Encapsulate = Callable[[bytes], tuple[bytes, bytes]]


def _mlkem_encapsulate(public_key: bytes) -> tuple[bytes, bytes]:
    return get_backend().mlkem768_encapsulate(public_key)


@attrs.frozen
class SessionSecrets:
    """What first contact hands the ratchet (§3.4): root, header keys, epoch 0, AD."""

    root: bytes
    hka: bytes
    nhkb: bytes
    pq0: bytes
    ad: bytes


@attrs.frozen
class _Header:
    dh: bytes
    pn: int
    n: int
    flags: int
    epoch: int
    kind: int
    pq_data: bytes
    auth: bytes | None

    def encode(self) -> bytes:
        head = _HEADER.pack(self.dh, self.pn, self.n, self.flags, self.epoch, self.kind)
        return head + self.pq_data + (self.auth or b"")

    @classmethod
    def parse(cls, data: bytes) -> _Header | None:
        if len(data) < _HEADER.size:
            return None
        dh, pn, n, flags, epoch, kind = _HEADER.unpack_from(data)
        if kind not in _KIND_SIZE or flags & ~(FLAG_PQ | FLAG_AUTH):
            return None
        end = _HEADER.size + _KIND_SIZE[kind]
        auth = data[end : end + CT_SIZE] if flags & FLAG_AUTH else None
        if len(data) != end + (CT_SIZE if auth is not None else 0):
            return None
        return cls(dh, pn, n, flags, epoch, kind, data[_HEADER.size : end], auth)


@attrs.define
class RatchetState:
    """Everything one side of a conversation keeps (§4.1); :meth:`to_bytes` persists it.

    Field names follow the Double Ratchet specification (``dh_private`` is
    DHs, ``dh_remote`` DHr, ``cks``/``ckr``, ``ns``/``nr``/``pn``,
    ``hks``/``hkr``/``nhks``/``nhkr``).  ``skipped`` maps a header key to
    the message keys skipped in its chain.  The PQ ratchet keeps up to three
    ``epochs`` (number → secret), the epoch it sends in, the highest epoch the
    peer has shown it knows (``confirmed_epoch``), and at most one of: an
    ML-KEM seed whose key it offers for the next epoch (``pq_seed``), or a
    ciphertext it owes the peer (``pq_ct``).
    """

    initiator: bool
    pq: bool
    ad: bytes
    root: bytes
    dh_private: bytes
    dh_public: bytes
    dh_remote: bytes | None
    cks: bytes | None
    ckr: bytes | None
    ns: int
    nr: int
    pn: int
    hks: bytes | None
    hkr: bytes | None
    nhks: bytes
    nhkr: bytes
    skipped: dict[bytes, dict[int, bytes]]
    epochs: dict[int, bytes]
    send_epoch: int
    confirmed_epoch: int
    pq_seed: bytes | None
    pq_ct: bytes | None
    #: Responder, deniable mode: the X-Wing ciphertext to the initiator's identity key.
    auth_ct: bytes | None
    #: Responder, deniable mode: the secret to mix at the first DH ratchet step.
    auth_mix: bytes | None
    #: Initiator, deniable mode: the responder's ``auth_ct`` is still to come.
    auth_pending: bool
    #: Whether the peer is authenticated (always, in signed mode).
    verified: bool

    def copy(self) -> RatchetState:
        """A copy whose dicts can be changed without touching this one (copy-on-write)."""
        return attrs.evolve(self, skipped=dict(self.skipped), epochs=dict(self.epochs))

    def skipped_count(self) -> int:
        return sum(len(keys) for keys in self.skipped.values())

    def to_bytes(self) -> bytes:
        """The state as deterministic CBOR, for the node to write atomically."""
        obj: dict[str, Any] = {}
        for field in attrs.fields(RatchetState):
            value = getattr(self, field.name)
            if field.name == "skipped":
                value = [[hk, sorted(keys.items())] for hk, keys in value.items()]
            elif field.name == "epochs":
                value = sorted(value.items())
            obj[field.name] = value
        return dumps_canonical({"v": 1, "state": obj})

    @classmethod
    def from_bytes(cls, data: bytes) -> RatchetState:
        """Restore a state written by :meth:`to_bytes`; ConfigError if it is not one."""
        try:
            obj = loads_canonical(data)
            fields = dict(obj["state"])
            if obj["v"] != 1:
                raise ConfigError("unknown ratchet state version")
            fields["skipped"] = {hk: dict(keys) for hk, keys in fields["skipped"]}
            fields["epochs"] = dict(fields["epochs"])
            return cls(**fields)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a ratchet state: {exc}") from None


# ---------------------------------------------------------------- derivations


def _x25519_private(rng: Rng) -> tuple[bytes, bytes]:
    private = x25519.X25519PrivateKey.from_private_bytes(rng(32))
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def _dh(private: bytes, public: bytes) -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    try:
        return key.exchange(x25519.X25519PublicKey.from_public_bytes(public))
    except ValueError:
        raise CryptoError("low-order X25519 ratchet key") from None


def _kdf_rk(root: bytes, dh_out: bytes) -> tuple[bytes, bytes, bytes]:
    """KDF_RK_HE (Double Ratchet §4.2): new root key, chain key, next header key."""
    out = derive(dh_out, b"rk", salt=root, length=96)
    return out[:32], out[32:64], out[64:]


def _epoch_secret(previous: bytes, shared: bytes, epoch: int, ek: bytes, ct: bytes) -> bytes:
    return derive(
        shared, b"pq-epoch", salt=previous, context=epoch.to_bytes(4, "big") + sha3_256(ek, ct)
    )


def _pad(data: bytes, size: int) -> bytes:
    """ISO/IEC 7816-4 padding to ``size`` bytes: data ‖ 0x80 ‖ 0x00*."""
    return data + b"\x80" + bytes(size - len(data) - 1)


def _unpad(data: bytes) -> bytes | None:
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        return None
    return stripped[:-1]


def _bstr_head(n: int) -> int:
    return 1 if n < 24 else 2 if n < 256 else 3 if n < 65536 else 5


def _encoded_size(hdr: int, body: int) -> int:
    """Size of an encoded :class:`RatchetMessage` with these field lengths."""
    fixed = 1 + 5 + 12 + 4 + 5  # map head, "type", "ratchet_msg", "hdr", "body"
    return fixed + _bstr_head(hdr) + hdr + _bstr_head(body) + body


# ---------------------------------------------------------------- setup


def initiator_state(
    secrets: SessionSecrets, remote_dh: bytes, *, pq: bool, deniable: bool, rng: Rng
) -> RatchetState:
    """RatchetInitAlice with header encryption (§4.2), plus the first ML-KEM offer."""
    dh_private, dh_public = _x25519_private(rng)
    root, cks, nhks = _kdf_rk(secrets.root, _dh(dh_private, remote_dh))
    return RatchetState(
        initiator=True,
        pq=pq,
        ad=secrets.ad,
        root=root,
        dh_private=dh_private,
        dh_public=dh_public,
        dh_remote=remote_dh,
        cks=cks,
        ckr=None,
        ns=0,
        nr=0,
        pn=0,
        hks=secrets.hka,
        hkr=None,
        nhks=nhks,
        nhkr=secrets.nhkb,
        skipped={},
        epochs={0: secrets.pq0},
        send_epoch=0,
        confirmed_epoch=0,
        pq_seed=rng(MLKEM_SEED_SIZE) if pq else None,
        pq_ct=None,
        auth_ct=None,
        auth_mix=None,
        auth_pending=deniable,
        verified=True,
    )


def responder_state(
    secrets: SessionSecrets,
    dh_private: bytes,
    *,
    pq: bool,
    auth: tuple[bytes, bytes] | None,
) -> RatchetState:
    """RatchetInitBob with header encryption (§4.2).

    ``auth`` is (shared secret, ciphertext) of an X-Wing encapsulation to the
    initiator's identity key in deniable mode (§3.4): the secret is mixed into
    the root at the first DH ratchet step and the ciphertext rides in every
    header until the initiator has answered.
    """
    dh_public = x25519.X25519PrivateKey.from_private_bytes(dh_private).public_key()
    return RatchetState(
        initiator=False,
        pq=pq,
        ad=secrets.ad,
        root=secrets.root,
        dh_private=dh_private,
        dh_public=dh_public.public_bytes_raw(),
        dh_remote=None,
        cks=None,
        ckr=None,
        ns=0,
        nr=0,
        pn=0,
        hks=None,
        hkr=None,
        nhks=secrets.nhkb,
        nhkr=secrets.hka,
        skipped={},
        epochs={0: secrets.pq0},
        send_epoch=0,
        confirmed_epoch=0,
        pq_seed=None,
        pq_ct=None,
        auth_ct=auth[1] if auth is not None else None,
        auth_mix=auth[0] if auth is not None else None,
        auth_pending=False,
        verified=auth is None,
    )


class _Drop(Exception):
    """A received message is refused; ``reason`` is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- the session


class RatchetSession:
    """One side of a conversation after first contact: encrypt and decrypt (§4).

    ``identity_key`` is needed only by a deniable-mode initiator, to open the
    responder's encapsulation to its identity key.  ``mlkem_encapsulate`` and
    ``rng`` are injectable so vectors can replay a run.
    """

    def __init__(
        self,
        state: RatchetState,
        *,
        identity_key: XWingPrivateKey | None = None,
        rng: Rng = os.urandom,
        mlkem_encapsulate: Encapsulate = _mlkem_encapsulate,
    ) -> None:
        self.state = state
        self.identity_key = identity_key
        self.rng = rng
        self.mlkem_encapsulate = mlkem_encapsulate
        self.drops: Counter[str] = Counter()
        self._mlkem_keys: dict[bytes, KEMPrivateKey] = {}
        #: Epoch keys by (epoch secret, direction): a discarded copy may have made
        #: another secret for the same epoch number, so the number is no key.
        self._pq_keys: dict[tuple[bytes, bool], bytes] = {}

    # ------------------------------------------------------------ helpers

    def _mlkem_key(self, seed: bytes) -> KEMPrivateKey:
        key = self._mlkem_keys.get(seed)
        if key is None:
            self._mlkem_keys.clear()
            key = self._mlkem_keys[seed] = get_backend().mlkem768_from_seed(seed)
        return key

    def _pq_key(self, st: RatchetState, epoch: int, from_initiator: bool) -> bytes:
        """The salt of every message key sent in ``epoch`` by one side (§4.4)."""
        secret = st.epochs[epoch]
        cache_key = (secret, from_initiator)
        key = self._pq_keys.get(cache_key)
        if key is None:
            key = derive(secret, b"pq-send", context=b"\x01" if from_initiator else b"\x00")
            if len(self._pq_keys) > 4 * MAX_EPOCHS:
                self._pq_keys.clear()
            self._pq_keys[cache_key] = key
        return key

    def _message_key(
        self, st: RatchetState, dr_mk: bytes, epoch: int, from_initiator: bool
    ) -> bytes:
        return derive(dr_mk, b"mk", salt=self._pq_key(st, epoch, from_initiator))

    @property
    def verified(self) -> bool:
        """Whether the peer is authenticated (§3.4): False until a deniable sender answers."""
        return self.state.verified

    def can_send(self) -> bool:
        return self.state.cks is not None

    def mailbox_epoch(self) -> int:
        """The newest epoch both sides know: its secret names the mailbox slots to write (§5.1)."""
        return self.state.confirmed_epoch

    def epoch_secret(self, epoch: int) -> bytes | None:
        return self.state.epochs.get(epoch)

    def stats(self) -> dict[str, Any]:
        st = self.state
        return {
            "sent": st.ns,
            "epoch": st.send_epoch,
            "skipped_keys": st.skipped_count(),
            "verified": st.verified,
            "drops": dict(self.drops),
        }

    def to_bytes(self) -> bytes:
        return self.state.to_bytes()

    # ------------------------------------------------------------ sending

    def encrypt(self, data: bytes, *, pad_to: int | None = None) -> RatchetMessage:
        """Encrypt ``data`` as the next message; ``pad_to`` fixes the encoded size.

        Raises SessionError if this side cannot send yet, ConfigError if
        ``data`` does not fit ``pad_to``.
        """
        if type(data) is not bytes:
            raise ConfigError(f"data must be bytes, got {type(data).__name__}")
        st = self.state.copy()
        if st.cks is None or st.hks is None:
            raise SessionError("this side cannot send before it has received a message")
        if st.ns >= _MAX_COUNTER:
            raise SessionError("sending chain exhausted")
        kind, pq_data = KIND_NONE, b""
        if st.pq_seed is not None:
            kind, pq_data = KIND_EK, self._mlkem_key(st.pq_seed).public_bytes()
        elif st.pq_ct is not None:
            kind, pq_data = KIND_CT, st.pq_ct
        flags = (FLAG_PQ if st.pq else 0) | (FLAG_AUTH if st.auth_ct is not None else 0)
        header = _Header(
            st.dh_public, st.pn, st.ns, flags, st.send_epoch, kind, pq_data, st.auth_ct
        ).encode()
        nonce = int.from_bytes(self.rng(_NONCE_SIZE), "big")
        hdr = nonce.to_bytes(_NONCE_SIZE, "big") + ChaChaPoly(st.hks).encrypt(nonce, st.ad, header)
        st.cks, dr_mk = chain_step(st.cks)
        st.ns += 1
        mk = self._message_key(st, dr_mk, st.send_epoch, st.initiator)
        if pad_to is None:
            body_size = len(data) + 1 + 16
        else:
            body_size = pad_to - _encoded_size(len(hdr), 0)
            while body_size > 0 and _encoded_size(len(hdr), body_size) > pad_to:
                body_size -= 1
            if _encoded_size(len(hdr), body_size) != pad_to or body_size - 16 < len(data) + 1:
                raise ConfigError(f"{len(data)} bytes of data do not fit a {pad_to}-byte message")
        body = ChaChaPoly(mk).encrypt(0, st.ad + hdr, _pad(data, body_size - 16))
        self.state = st
        return RatchetMessage(hdr, body)

    # ------------------------------------------------------------ receiving

    def decrypt(self, message: RatchetMessage) -> bytes | None:
        """The plaintext of ``message``, or None: refused and counted, state unchanged."""
        st = self.state.copy()
        try:
            data = self._decrypt(st, message)
        except _Drop as drop:
            self.drops[drop.reason] += 1
            return None
        self.state = st
        return data

    def _open_header(self, st: RatchetState, hk: bytes | None, hdr: bytes) -> _Header | None:
        if hk is None:
            return None
        try:
            plain = ChaChaPoly(hk).decrypt(
                int.from_bytes(hdr[:_NONCE_SIZE], "big"), st.ad, hdr[_NONCE_SIZE:]
            )
        except CryptoError:
            return None
        header = _Header.parse(plain)
        if header is None:
            raise _Drop("header-malformed")
        return header

    def _decrypt(self, st: RatchetState, message: RatchetMessage) -> bytes:
        hdr = message.hdr
        seen_old = False
        for hk, keys in st.skipped.items():
            header = self._open_header(st, hk, hdr)
            if header is None:
                continue
            dr_mk = keys.get(header.n)
            if dr_mk is None:
                seen_old = True
                continue
            self._check_pq(st, header)
            mk = self._receive_pq(st, header, dr_mk)
            data = self._open_body(st, mk, message)
            keys = dict(keys)
            del keys[header.n]
            if keys:
                st.skipped[hk] = keys
            else:
                del st.skipped[hk]
            return data
        header = self._open_header(st, st.hkr, hdr)
        if header is not None:
            if header.n < st.nr:
                raise _Drop("duplicate")
            self._check_pq(st, header)
            self._skip(st, header.n)
        else:
            header = self._open_header(st, st.nhkr, hdr)
            if header is None:
                raise _Drop("duplicate" if seen_old else "header")
            self._check_pq(st, header)
            self._skip(st, header.pn)
            self._dh_ratchet(st, header)
            self._skip(st, header.n)
        assert st.ckr is not None
        st.ckr, dr_mk = chain_step(st.ckr)
        st.nr += 1
        mk = self._receive_pq(st, header, dr_mk)
        return self._open_body(st, mk, message)

    def _open_body(self, st: RatchetState, mk: bytes, message: RatchetMessage) -> bytes:
        try:
            padded = ChaChaPoly(mk).decrypt(0, st.ad + message.hdr, message.body)
        except CryptoError:
            raise _Drop("body") from None
        data = _unpad(padded)
        if data is None:
            raise _Drop("padding")
        return data

    def _skip(self, st: RatchetState, until: int) -> None:
        """SkipMessageKeysHE: keep the keys of messages ``nr .. until-1`` of this chain."""
        if st.ckr is None or until <= st.nr:
            if until < st.nr and st.ckr is not None:
                raise _Drop("duplicate")
            return
        if until - st.nr > MAX_JUMP:
            raise _Drop("too-far")
        assert st.hkr is not None
        keys = dict(st.skipped.pop(st.hkr, {}))
        ck = st.ckr
        for n in range(st.nr, until):
            ck, mk = chain_step(ck)
            keys[n] = mk
        st.ckr, st.nr = ck, until
        st.skipped[st.hkr] = keys  # re-inserted last: the newest chain
        self._bound_skipped(st)

    @staticmethod
    def _bound_skipped(st: RatchetState) -> None:
        while len(st.skipped) > MAX_SKIPPED_CHAINS:
            del st.skipped[next(iter(st.skipped))]
        excess = st.skipped_count() - MAX_SKIPPED
        while excess > 0:
            hk = next(iter(st.skipped))
            keys = st.skipped[hk]
            if len(keys) <= excess:
                del st.skipped[hk]
                excess -= len(keys)
            else:
                st.skipped[hk] = dict(sorted(keys.items())[excess:])
                excess = 0

    def _dh_ratchet(self, st: RatchetState, header: _Header) -> None:
        """DHRatchetHE (§4.2), with the deniable-mode mixing of §3.4."""
        st.pn, st.ns, st.nr = st.ns, 0, 0
        st.hks, st.hkr = st.nhks, st.nhkr
        st.dh_remote = header.dh
        if st.auth_pending:
            if header.auth is None or self.identity_key is None:
                raise _Drop("auth-missing")
            try:
                shared = self.identity_key.decapsulate(header.auth)
            except CryptoError:
                raise _Drop("auth-malformed") from None
            st.root = derive(shared, b"auth", salt=st.root)
            st.auth_pending = False
        elif st.auth_ct is not None and st.auth_mix is None:
            # A DH step after the mixed one: only the holder of the identity key got here.
            st.auth_ct = None
            st.verified = True
        try:
            st.root, st.ckr, st.nhkr = _kdf_rk(st.root, _dh(st.dh_private, st.dh_remote))
        except CryptoError:
            raise _Drop("dh-malformed") from None
        if st.auth_mix is not None:
            st.root = derive(st.auth_mix, b"auth", salt=st.root)
            st.auth_mix = None
        st.dh_private, st.dh_public = _x25519_private(self.rng)
        st.root, st.cks, st.nhks = _kdf_rk(st.root, _dh(st.dh_private, st.dh_remote))

    # ------------------------------------------------------------ PQ epochs

    def _check_pq(self, st: RatchetState, header: _Header) -> None:
        if bool(header.flags & FLAG_PQ) != st.pq:
            raise _Drop("pq-downgrade" if st.pq else "pq-mismatch")

    def _receive_pq(self, st: RatchetState, header: _Header, dr_mk: bytes) -> bytes:
        """Advance the epoch ratchet on ``header`` (§4.4); the message key it uses."""
        if st.pq:
            latest = max(st.epochs)
            if header.kind == KIND_CT and header.epoch == latest + 1:
                if st.pq_seed is None:
                    raise _Drop("pq-epoch")
                key = self._mlkem_key(st.pq_seed)
                shared = key.decapsulate(header.pq_data)
                secret = _epoch_secret(
                    st.epochs[latest], shared, header.epoch, key.public_bytes(), header.pq_data
                )
                self._new_epoch(st, header.epoch, secret)
                st.pq_seed = None
            if header.epoch not in st.epochs:
                raise _Drop("pq-epoch")
            if header.epoch > st.confirmed_epoch:
                st.confirmed_epoch = header.epoch
            if st.pq_ct is not None and st.confirmed_epoch == st.send_epoch:
                # The peer sends in the epoch of our ciphertext: our turn to offer a key.
                st.pq_ct = None
                st.pq_seed = self.rng(MLKEM_SEED_SIZE)
            if (
                header.kind == KIND_EK
                and header.epoch == max(st.epochs)
                and st.pq_seed is None
                and st.pq_ct is None
            ):
                try:
                    shared, ct = self.mlkem_encapsulate(header.pq_data)
                except CryptoError:
                    raise _Drop("pq-malformed") from None
                epoch = header.epoch + 1
                secret = _epoch_secret(st.epochs[header.epoch], shared, epoch, header.pq_data, ct)
                self._new_epoch(st, epoch, secret)
                st.pq_ct = ct
        elif header.epoch != 0 or header.kind != KIND_NONE:
            raise _Drop("pq-mismatch")
        if header.epoch not in st.epochs:
            raise _Drop("pq-epoch")
        return self._message_key(st, dr_mk, header.epoch, not st.initiator)

    @staticmethod
    def _new_epoch(st: RatchetState, epoch: int, secret: bytes) -> None:
        st.epochs[epoch] = secret
        st.send_epoch = epoch
        while len(st.epochs) > MAX_EPOCHS:
            del st.epochs[min(st.epochs)]
