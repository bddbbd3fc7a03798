"""``qdht-bench messaging``: first contact and per-message cost, beside PyPI ``doubleratchet``.

* ``first_build_ms`` / ``first_process_ms``: :func:`initiate` (three X-Wing
  encapsulations, an ML-DSA-65 signature, the first ratchet message) and
  :func:`accept_first` (three decapsulations, a verification, the ratchet set
  up), medians, process CPU time, with a one-time prekey and signed.
* Per message, encrypt and decrypt CPU microseconds (medians over batches) of
  qdht's triple ratchet with the PQ epoch ratchet on, and of the classical
  ``doubleratchet`` 1.3 (X25519, HKDF/HMAC-SHA-256, AES-CBC+HMAC; no header
  encryption), measured in the same run with the same plaintexts, in two
  traffic shapes: ``stream`` (one direction: symmetric steps only) and
  ``pingpong`` (every message answers the last, so every message is a DH
  ratchet step and every round trip an ML-KEM epoch step for qdht).  The
  ratio to the baseline is the figure with a target (≤ 1.5).
  ``doubleratchet``'s coroutines do no I/O; they are driven to completion
  directly, without an event loop, so the baseline carries no scheduler cost.
* Bytes on the wire: encoded first messages and ratchet messages.
* On the network (``--net-rounds``, 0 to skip): :class:`qdht.messaging.MessagingDemo`
  on loopback UDP with direct delivery: end-to-end latency of ping-pong
  messages (median, p90; wall clock), their ratio to the poll interval (the
  baseline: a message waits for the sender's next write tick and the
  reader's next poll tick), and an idle client's polling traffic per contact
  per second, mailbox requests alone and everything the node sends and
  receives (the lookups that find each key's holders dominate).
* Through mixes (``--mix-rounds``, 0 to skip; ``mix_*``): the same scenario
  with an authority and ``--mixes`` mixes, Alice and Bob delivering through
  the mixnet at ``--mix-poll-interval``: end-to-end latency, its ratio to the
  direct run's and to the poll interval, and idle polling per contact: mix
  packets of the requests and their replies (each replaces a cover packet of
  the λ_P stream, so it adds nothing to what the node sends) and all node
  traffic (the Poisson streams: constant whatever arrives).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import trio

from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.crypto.xwing import XWingPrivateKey
from qdht.messaging import (
    Accepted,
    MessagingDemo,
    PrekeyStore,
    RatchetSession,
    accept_first,
    initiate,
)
from qdht.wire import encode
from qdht_bench._common import BenchResult, Target, median, percentile

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION: Final = "direct messaging: first contact, per-message cost vs doubleratchet, bytes"
NOW: Final = 1_750_000_000.0
_PLAINTEXT: Final = b"m" * 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=50, help="first messages to time")
    parser.add_argument("--messages", type=int, default=400, help="messages per batch")
    parser.add_argument("--batches", type=int, default=5, help="batches per traffic shape")
    parser.add_argument(
        "--net-rounds", type=int, default=10, help="ping-pongs on loopback UDP (0: skip)"
    )
    parser.add_argument("--net-idle", type=float, default=10.0, help="idle seconds measured")
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="poll interval of the network run"
    )
    parser.add_argument(
        "--mix-rounds", type=int, default=5, help="ping-pongs through mixes (0: skip)"
    )
    parser.add_argument("--mixes", type=int, default=3, help="mixes of the mixnet run")
    parser.add_argument(
        "--mix-poll-interval", type=float, default=2.0, help="poll interval through mixes"
    )


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (doubleratchet does no I/O)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("coroutine suspended")


def _users() -> tuple[tuple[MLDSAPrivateKey, XWingPrivateKey], PrekeyStore]:
    alice = (MLDSAPrivateKey.generate(), XWingPrivateKey.generate())
    store = PrekeyStore(MLDSAPrivateKey.generate(), XWingPrivateKey.generate())
    store.rotate(NOW)
    store.refill()
    return alice, store


def _first_contact(count: int, result: BenchResult) -> tuple[RatchetSession, RatchetSession]:
    (mldsa, xwing), store = _users()
    signer = store.mldsa_key.public_key_bytes()
    build, process = [], []
    session_pair: tuple[RatchetSession, RatchetSession] | None = None
    for _ in range(count):
        record = store.record(NOW)
        start = time.process_time()
        contact = initiate(
            mldsa_key=mldsa,
            identity_key=xwing,
            record=record,
            signer=signer,
            data=_PLAINTEXT,
            now=NOW,
        )
        middle = time.process_time()
        accepted = accept_first(store, contact.message)
        end = time.process_time()
        if not isinstance(accepted, Accepted):
            raise RuntimeError(f"first message refused: {dict(store.drops)}")
        build.append((middle - start) * 1000)
        process.append((end - middle) * 1000)
        store.refill()
        session_pair = (contact.session, accepted.session)
    result.add("first_build_ms", median(build))
    result.add("first_process_ms", median(process))
    for one_time in (True, False):
        for deniable in (False, True):
            first = initiate(
                mldsa_key=mldsa,
                identity_key=xwing,
                record=store.record(NOW),
                signer=signer,
                data=b"",
                now=NOW,
                use_one_time=one_time,
                deniable=deniable,
            ).message
            opk = "opk" if one_time else "no_opk"
            mode = "deniable" if deniable else "signed"
            result.add(f"first_bytes_{opk}_{mode}", len(encode(first)))
    assert session_pair is not None
    return session_pair


class _Baseline:
    """Two ``doubleratchet`` parties, set up as the package's recommended classes allow."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import x25519
        from doubleratchet import DoubleRatchet, Header
        from doubleratchet.recommended import (
            HashFunction,
            aead_aes_hmac,
            diffie_hellman_ratchet_curve25519,
            kdf_hkdf,
            kdf_separate_hmacs,
        )

        class DR(DoubleRatchet):
            @staticmethod
            def _build_associated_data(associated_data: bytes, header: Header) -> bytes:
                return (
                    associated_data
                    + header.ratchet_pub
                    + header.previous_sending_chain_length.to_bytes(8, "big")
                    + header.sending_chain_length.to_bytes(8, "big")
                )

        class DHR(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
            pass

        class AEAD(aead_aes_hmac.AEAD):
            @staticmethod
            def _get_hash_function() -> HashFunction:
                return HashFunction.SHA_256

            @staticmethod
            def _get_info() -> bytes:
                return b"qdht bench aead"

        class RootKDF(kdf_hkdf.KDF):
            @staticmethod
            def _get_hash_function() -> HashFunction:
                return HashFunction.SHA_256

            @staticmethod
            def _get_info() -> bytes:
                return b"qdht bench root"

        class ChainKDF(kdf_separate_hmacs.KDF):
            @staticmethod
            def _get_hash_function() -> HashFunction:
                return HashFunction.SHA_256

        self.ad = b"\x00" * 32
        config: dict[str, Any] = {
            "diffie_hellman_ratchet_class": DHR,
            "root_chain_kdf": RootKDF,
            "message_chain_kdf": ChainKDF,
            "message_chain_constant": b"\x01\x02",
            "dos_protection_threshold": 1000,
            "max_num_skipped_message_keys": 2000,
            "aead": AEAD,
        }
        bob_priv = x25519.X25519PrivateKey.generate()
        bob_pub = bob_priv.public_key().public_bytes_raw()
        shared = b"\x07" * 32
        self.alice, first = _drive(
            DR.encrypt_initial_message(
                **config,
                shared_secret=shared,
                recipient_ratchet_pub=bob_pub,
                message=_PLAINTEXT,
                associated_data=self.ad,
            )
        )
        self.bob, _ = _drive(
            DR.decrypt_initial_message(
                **config,
                shared_secret=shared,
                own_ratchet_priv=bob_priv.private_bytes_raw(),
                message=first,
                associated_data=self.ad,
            )
        )

    def encrypt(self, sender: Any, data: bytes) -> Any:
        return _drive(sender.encrypt_message(data, self.ad))

    def decrypt(self, receiver: Any, message: Any) -> bytes:
        data: bytes = _drive(receiver.decrypt_message(message, self.ad))
        return data


def _time_batch(
    turns: list[tuple[Any, Any]],
    encrypt: Callable[[Any, bytes], Any],
    decrypt: Callable[[Any, Any], bytes | None],
) -> tuple[float, float]:
    """Mean CPU µs per encrypt and per decrypt over the (sender, receiver) ``turns``."""
    enc = dec = 0.0
    for sender, receiver in turns:
        start = time.process_time()
        message = encrypt(sender, _PLAINTEXT)
        middle = time.process_time()
        if decrypt(receiver, message) != _PLAINTEXT:
            raise RuntimeError("a message did not decrypt")
        dec += time.process_time() - middle
        enc += middle - start
    return enc / len(turns) * 1e6, dec / len(turns) * 1e6


def _turns(shape: str, a: Any, b: Any, messages: int) -> list[tuple[Any, Any]]:
    """Who sends each message: always ``a`` (stream), or ``a`` and ``b`` in turn (pingpong)."""
    return [(b, a) if shape == "pingpong" and i % 2 else (a, b) for i in range(messages)]


def _per_message(
    args: argparse.Namespace, pair: tuple[RatchetSession, RatchetSession], result: BenchResult
) -> None:
    qa, qb = pair
    base = _Baseline()
    for shape in ("stream", "pingpong"):
        q_enc, q_dec, b_enc, b_dec = [], [], [], []
        for _ in range(args.batches):
            e, d = _time_batch(
                _turns(shape, qa, qb, args.messages),
                lambda sender, data: sender.encrypt(data),
                lambda receiver, message: receiver.decrypt(message),
            )
            q_enc.append(e)
            q_dec.append(d)
            e, d = _time_batch(
                _turns(shape, base.alice, base.bob, args.messages), base.encrypt, base.decrypt
            )
            b_enc.append(e)
            b_dec.append(d)
        qe, qd, be, bd = median(q_enc), median(q_dec), median(b_enc), median(b_dec)
        result.add(f"{shape}_qdht_encrypt_us", qe)
        result.add(f"{shape}_qdht_decrypt_us", qd)
        result.add(f"{shape}_doubleratchet_encrypt_us", be)
        result.add(f"{shape}_doubleratchet_decrypt_us", bd)
        result.add(f"{shape}_ratio_to_doubleratchet", (qe + qd) / (be + bd), Target("<=", 1.5))
    result.add("pq_epochs_during_run", qa.state.send_epoch)


def _bytes(pair: tuple[RatchetSession, RatchetSession], result: BenchResult) -> None:
    qa, qb = pair
    qa.decrypt(qb.encrypt(b""))  # settle the PQ roles
    sizes: dict[str, int] = {}
    for _ in range(6):
        for sender, receiver in ((qa, qb), (qb, qa)):
            message = sender.encrypt(b"")
            kind = "plain"
            if len(message.hdr) > 1000:
                kind = "ek" if len(message.hdr) > 1250 else "ct"
            sizes[kind] = len(encode(message))
            receiver.decrypt(message)
    result.add("message_bytes_overhead", sizes.get("plain", 0))
    result.add("message_bytes_overhead_with_ek", sizes.get("ek", 0))
    result.add("message_bytes_overhead_with_ct", sizes.get("ct", 0))


def _network(args: argparse.Namespace, result: BenchResult) -> None:
    with tempfile.TemporaryDirectory(prefix="qdht-bench-msg-") as tmp:
        demo = MessagingDemo(
            Path(tmp),
            rounds=args.net_rounds,
            idle=args.net_idle,
            poll_interval=args.poll_interval,
        )
        report = trio.run(demo.run)
    latencies = report["latencies_s"]
    result.add("net_ok", 1.0 if report["ok"] else 0.0, Target("==", 1.0))
    result.add("net_e2e_latency_median_ms", 1000 * median(latencies))
    result.add("net_e2e_latency_p90_ms", 1000 * percentile(latencies, 90))
    result.add("net_poll_interval_ms", 1000 * args.poll_interval)
    result.add("net_latency_to_poll_interval", median(latencies) / args.poll_interval)
    result.add("net_offline_return_to_read_ms", 1000 * report["return_to_all_read_s"])
    result.add(
        "net_idle_mailbox_bytes_per_s_per_contact", report["idle_mailbox_bytes_per_s_per_contact"]
    )
    result.add("net_idle_node_bytes_per_s_per_contact", report["idle_node_bytes_per_s_per_contact"])
    result.add("net_idle_mailbox_ops_per_s", report["idle_mailbox_ops_per_s"])
    result.notes.append(
        f"network: {report['nodes']} nodes on loopback UDP, direct delivery, no mixes; "
        f"{len(latencies)} ping-pong messages; poll interval {args.poll_interval:g} s, "
        f"4 slot reads + 2 intro reads + 4 writes or cover reads per tick; idle "
        f"{report['idle_s']:.1f} s with {report['contacts']} contact"
    )


def _mix_network(args: argparse.Namespace, result: BenchResult) -> None:
    interval = args.mix_poll_interval
    with tempfile.TemporaryDirectory(prefix="qdht-bench-msg-mix-") as tmp:
        demo = MessagingDemo(
            Path(tmp),
            rounds=args.mix_rounds,
            idle=args.net_idle,
            poll_interval=interval,
            mixes=args.mixes,
            timeout=120.0,
        )
        report = trio.run(demo.run)
    latencies = report["latencies_s"]
    result.add("mix_ok", 1.0 if report["ok"] else 0.0, Target("==", 1.0))
    result.add("mix_e2e_latency_median_ms", 1000 * median(latencies))
    result.add("mix_e2e_latency_p90_ms", 1000 * percentile(latencies, 90))
    result.add("mix_poll_interval_ms", 1000 * interval)
    result.add("mix_latency_to_poll_interval", median(latencies) / interval)
    direct = result.metrics.get("net_e2e_latency_median_ms")
    if direct:
        result.add("mix_latency_to_direct", 1000 * median(latencies) / direct)
    result.add("mix_offline_return_to_read_ms", 1000 * report["return_to_all_read_s"])
    result.add(
        "mix_idle_polling_bytes_per_s_per_contact", report["idle_mailbox_bytes_per_s_per_contact"]
    )
    result.add("mix_idle_node_bytes_per_s_per_contact", report["idle_node_bytes_per_s_per_contact"])
    result.add("mix_idle_mailbox_ops_per_s", report["idle_mailbox_ops_per_s"])
    result.add("mix_direct_requests", float(report["direct_requests"]), Target("==", 0.0))
    result.add("mix_intro_reads_direct", float(report["intro_reads_direct"]))
    result.add("mix_packets_per_request", float(report["fragments"]))
    result.notes.append(
        f"through mixes: 1 authority and {report['mixes']} mixes (holders and exits) on "
        f"loopback UDP; {len(latencies)} ping-pong messages; poll interval {interval:g} s, "
        f"4 slot reads + 2 writes or cover reads per tick through exits, each an "
        f"exit_mbox in {report['fragments']} {demo.mixnet.geometry.packet_size}-byte "
        f"packets each way, and 2 intro reads sent directly (§7.4); "
        f"λ_P {demo.mixnet.lambda_payload:g}/s"
    )


def run(args: argparse.Namespace) -> BenchResult:
    result = BenchResult("messaging")
    pair = _first_contact(args.count, result)
    _per_message(args, pair, result)
    _bytes(pair, result)
    if getattr(args, "net_rounds", 0) > 0:
        _network(args, result)
    if getattr(args, "mix_rounds", 0) > 0:
        _mix_network(args, result)
    result.notes.append(
        f"{args.count} first messages (signed, one-time prekey); {args.batches} batches of "
        f"{args.messages} messages of {len(_PLAINTEXT)} bytes per shape; process CPU time; "
        "bytes: encoded messages with an empty body (add the body and its 1-byte pad)"
    )
    return result
