"""Per-peer request timeouts from measured round-trip times (RFC 6298 shape).

The smoothed RTT and its variation live in the routing table's entries as two
floats (no per-peer object), so these are plain functions over them.
"""

from __future__ import annotations

from typing import Final

__all__ = ["rtt_sample", "timeout_from"]

#: RFC 6298 §2.3 gains.
_ALPHA: Final = 0.125
_BETA: Final = 0.25
#: RFC 6298's clock granularity G; a DHT's timers are far coarser than a kernel's.
_GRANULARITY: Final = 0.01
#: Timeouts double per consecutive miss (RFC 6298 §5.5), at most this many times.
_MAX_BACKOFF_SHIFT: Final = 4


def rtt_sample(srtt: float | None, rttvar: float | None, rtt: float) -> tuple[float, float]:
    """Fold one round-trip measurement into ``(srtt, rttvar)`` (RFC 6298 §2.2-2.3)."""
    if srtt is None or rttvar is None:
        return rtt, rtt / 2
    rttvar = (1 - _BETA) * rttvar + _BETA * abs(srtt - rtt)
    srtt = (1 - _ALPHA) * srtt + _ALPHA * rtt
    return srtt, rttvar


def timeout_from(
    srtt: float | None,
    rttvar: float | None,
    failures: int,
    *,
    initial: float,
    minimum: float,
    maximum: float,
) -> float:
    """The request timeout: SRTT + max(G, 4·RTTVAR), doubled per miss, clamped."""
    if srtt is None or rttvar is None:
        base = initial
    else:
        base = srtt + max(_GRANULARITY, 4 * rttvar)
    base *= 1 << min(failures, _MAX_BACKOFF_SHIFT)
    return min(maximum, max(minimum, base))
