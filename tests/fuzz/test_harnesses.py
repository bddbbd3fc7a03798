"""Short fuzzing of every decoder and state machine (the long run is ``qdht-bench fuzz``).

Each harness keeps one system under test across examples (one decoder, one
established session, one DHT core), exactly as the long run does; hypothesis
picks a seed input and a mutation stream, or raw bytes.  Every example must
leave no unhandled exception and no broken invariant behind.
"""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qdht_bench._fuzz import HARNESSES, Harness, Mutator, fuzz

NAMES = sorted(HARNESSES)


@functools.cache
def harness(name: str) -> Harness:
    return HARNESSES[name](random.Random(0))


def feed(h: Harness, data: bytes) -> None:
    """One input, then the harness's full invariant check; the SUT must have swallowed nothing."""
    before = h.internal_errors()
    h.now += 0.01
    h.execute(data)
    h.check()
    assert h.internal_errors() == before


@pytest.mark.parametrize("name", NAMES)
@given(pick=st.integers(min_value=0), stream=st.integers(min_value=0), rounds=st.integers(1, 4))
def test_mutated_seeds_are_handled(name: str, pick: int, stream: int, rounds: int) -> None:
    h = harness(name)
    mutator = Mutator(random.Random(stream))
    data = h.seeds[pick % len(h.seeds)]
    for _ in range(rounds):
        data = mutator.mutate(data, h.seeds)
    feed(h, data)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.binary(max_size=1500))
def test_random_bytes_are_handled(name: str, data: bytes) -> None:
    feed(harness(name), data)


@pytest.mark.parametrize("name", NAMES)
def test_unmutated_seeds_are_handled(name: str) -> None:
    h = harness(name)
    assert h.seeds, "a harness without seeds fuzzes nothing"
    for data in h.seeds:
        feed(h, data)


def test_a_short_loop_reports_its_executions_and_no_failures() -> None:
    report = fuzz(HARNESSES["wire-decode"](random.Random(1)), 300, seed=1)
    assert report.executions == 300
    assert (report.unhandled, report.invariant_failures) == (0, 0)
    assert report.corpus >= len(HARNESSES["wire-decode"](random.Random(1)).seeds)


def test_a_planted_bug_is_reported_not_raised() -> None:
    class Broken(Harness):
        name = "broken"

        def execute(self, data: bytes) -> None:
            if len(data) > 3:
                raise KeyError("planted")

    h = Broken(random.Random(0))
    h.seeds = [b"seed input"]
    report = fuzz(h, 200, seed=0)
    assert report.unhandled > 0
    assert "KeyError" in report.examples[0][2]
