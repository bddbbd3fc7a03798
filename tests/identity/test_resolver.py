"""The identity resolver's sans-IO core (16-resolve.md): answers, checks, cache."""

from __future__ import annotations

import functools
import itertools

import pytest

from qdht.errors import ConfigError
from qdht.identity import (
    Identity,
    IdentityResolution,
    ResolveConfig,
    ResolverCore,
    certificate_node_id,
)
from qdht.wire import IdentityResolved, ResolveIdentity, decode, encode

UNIX = 1_800_000_000
ADDR = ("10.0.0.1", 6881)


@functools.cache
def ident(n: int) -> Identity:
    return Identity.generate(0)


def _core(n: int, **config: float) -> ResolverCore:
    counter = itertools.count()
    return ResolverCore(
        ident(n),
        difficulty=0,
        unix_offset=float(UNIX),
        config=ResolveConfig(**config),  # type: ignore[arg-type]
        rng=lambda size: next(counter).to_bytes(size, "big"),
    )


def _exchange(asker: ResolverCore, answerer: ResolverCore, now: float) -> None:
    """Deliver the asker's RESOLVEs to ``answerer`` and its RESOLVEDs back."""
    for _dst, _addr, payload in asker.messages_to_send():
        answerer.receive_message(asker.identity.node_id, ADDR, payload, now)
    for _dst, _addr, payload in answerer.messages_to_send():
        asker.receive_message(answerer.identity.node_id, ADDR, payload, now)


def _event(core: ResolverCore) -> IdentityResolution:
    event = core.next_event()
    assert isinstance(event, IdentityResolution)
    return event


def test_a_node_answers_for_itself_and_the_asker_caches_it() -> None:
    alice, bob = _core(0), _core(1)
    target = bob.identity.node_id
    handle = alice.start_resolve(target, [(target, ADDR)], 0.0)
    _exchange(alice, bob, 0.5)
    event = _event(alice)
    assert (event.handle, event.outcome) == (handle, "resolved")
    assert event.certificate is not None
    assert certificate_node_id(event.certificate) == target
    assert event.certificate.mldsa_public == bob.identity.mldsa.public_key_bytes()
    # Cached: the next resolution is answered at once, without a message.
    again = alice.start_resolve(target, [(target, ADDR)], 10.0)
    assert alice.messages_to_send() == []
    assert _event(alice) == IdentityResolution(again, event.certificate, "resolved")
    assert alice.stats()["cache_hits"] == 1
    # ... until cache_ttl passed: then it asks again.
    alice.start_resolve(target, [(target, ADDR)], 3601.0)
    assert len(alice.messages_to_send()) == 1


def test_a_third_node_answers_from_its_cache() -> None:
    alice, bob, carol = _core(0), _core(1), _core(2)
    target = bob.identity.node_id
    carol.start_resolve(target, [(target, ADDR)], 0.0)
    _exchange(carol, bob, 0.0)
    assert _event(carol).outcome == "resolved"
    alice.start_resolve(target, [(carol.identity.node_id, ADDR)], 1.0)
    _exchange(alice, carol, 1.0)
    event = _event(alice)
    assert event.outcome == "resolved"
    assert event.certificate is not None
    assert certificate_node_id(event.certificate) == target


def test_a_certificate_for_another_node_id_is_dropped() -> None:
    alice, bob, mallory = _core(0), _core(1), _core(3)
    target = bob.identity.node_id
    alice.start_resolve(target, [(mallory.identity.node_id, ADDR)], 0.0)
    (_dst, _addr, payload) = alice.messages_to_send()[0]
    request = decode(payload, expect=(ResolveIdentity,))
    assert isinstance(request, ResolveIdentity)
    rid = request.rid
    # Mallory answers with her own (valid) certificate.
    forged = IdentityResolved(rid, mallory.own_certificate(0.0))
    alice.receive_message(mallory.identity.node_id, ADDR, encode(forged), 0.1)
    assert _event(alice).outcome == "unknown"
    assert alice.stats()["drops"] == {"wrong-node-id": 1}


def test_unanswered_and_unreachable_resolutions_fail() -> None:
    alice = _core(0)
    target = ident(1).node_id
    handle = alice.start_resolve(target, [(target, ADDR)], 0.0)
    assert alice.get_timer() == 5.0
    alice.handle_timer(5.0)
    assert _event(alice) == IdentityResolution(handle, None, "timeout")
    handle = alice.start_resolve(target, [(target, ADDR)], 6.0)
    alice.peer_unreachable(target, 6.5, "handshake-failed")
    assert _event(alice) == IdentityResolution(handle, None, "unreachable")
    assert _event_none(alice)
    with pytest.raises(ConfigError, match="node_id"):
        alice.start_resolve(b"short", [], 0.0)


def _event_none(core: ResolverCore) -> bool:
    return core.next_event() is None


def test_a_rotation_retires_the_older_node_id() -> None:
    alice = _core(0)
    old = ident(4)
    new = old.rotate_xwing()
    old_cert = old.certificate(now=UNIX, serial=1)
    new_cert = new.certificate(now=UNIX, serial=2)
    assert alice.learn(old.node_id, old_cert, None, 0.0)
    assert alice.cached(old.node_id, 1.0) == old_cert
    assert alice.learn(new.node_id, new_cert, None, 0.0)
    # Same ML-DSA key, higher serial: resolving the old ID gives the current one.
    assert alice.cached(old.node_id, 1.0) == new_cert
    assert alice.cached(new.node_id, 1.0) == new_cert


def test_a_revoked_key_fails_to_resolve() -> None:
    alice, bob = _core(0), _core(1)
    target = bob.identity.node_id
    cert = bob.own_certificate(0.0)
    revocation = bob.identity.revocation(now=UNIX, reason="key lost")
    alice.start_resolve(target, [(target, ADDR)], 0.0)
    (_dst, _addr, payload) = alice.messages_to_send()[0]
    request = decode(payload, expect=(ResolveIdentity,))
    assert isinstance(request, ResolveIdentity)
    rid = request.rid
    answer = IdentityResolved(rid, cert, revocation)
    alice.receive_message(target, ADDR, encode(answer), 0.1)
    assert _event(alice).outcome == "revoked"
    # Remembered: later resolutions fail at once, and alice passes it on.
    alice.start_resolve(target, [(target, ADDR)], 1.0)
    assert _event(alice).outcome == "revoked"
    assert alice.messages_to_send() == []
