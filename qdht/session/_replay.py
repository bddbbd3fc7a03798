"""The sliding replay window of a receiving key (05-transport.md §2)."""

from __future__ import annotations

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """Accepts each counter at most once, and none more than ``size`` below the highest.

    Call :meth:`check` before and :meth:`mark` after the AEAD tag verified,
    so forged packets cannot move the window.
    """

    __slots__ = ("bits", "highest", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.highest = -1
        self.bits = 0  # bit i set: counter (highest - i) was seen

    def check(self, n: int) -> str | None:
        """None if ``n`` may be accepted, else the drop reason."""
        if n > self.highest:
            return None
        offset = self.highest - n
        if offset >= self.size:
            return "out-of-window"
        if (self.bits >> offset) & 1:
            return "replayed"
        return None

    def mark(self, n: int) -> None:
        if n > self.highest:
            shift = n - self.highest
            self.bits = (
                ((self.bits << shift) | 1) & ((1 << self.size) - 1) if shift < self.size else 1
            )
            self.highest = n
        else:
            self.bits |= 1 << (self.highest - n)
