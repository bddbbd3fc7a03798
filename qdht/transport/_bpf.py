"""Classic BPF socket filters that drop muted and blocked sources in the kernel.

A node's admission policy (``04-handshake.md`` §5.5) mutes sources that flood
it and blocks the address of a refused peer.  Dropping their datagrams as
they are read still costs a receive call per datagram in Python; a socket
filter (``SO_ATTACH_FILTER``, Linux) drops them before they are queued on the
socket, so a flood from a few sources costs the node nothing.

This module only *builds* the program (sans-IO: a list of instructions);
:class:`~qdht.transport.UdpTransport` attaches it.  On a UDP socket the
filter sees the datagram from its UDP header on (offset 0: source port,
offset 8: the payload's first byte); the IP header is reached with the
kernel's ``SKF_NET_OFF`` base (IPv4 source at +12, IPv6 source at +8).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from typing import Final, NamedTuple

import attrs

from qdht.errors import ConfigError

__all__ = [
    "MAX_FILTER_SOURCES",
    "BpfInstruction",
    "SourceRule",
    "pack_bpf_program",
    "source_filter_program",
]

#: Most sources one kernel filter names; the rest are dropped in Python.
MAX_FILTER_SOURCES: Final = 64

# Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
BPF_LD: Final = 0x00
BPF_ALU: Final = 0x04
BPF_JMP: Final = 0x05
BPF_RET: Final = 0x06
BPF_W: Final = 0x00
BPF_H: Final = 0x08
BPF_B: Final = 0x10
BPF_ABS: Final = 0x20
BPF_RSH: Final = 0x70
BPF_JA: Final = 0x00
BPF_JEQ: Final = 0x10
BPF_K: Final = 0x00
#: The base of loads relative to the network (IP) header.
SKF_NET_OFF: Final = -0x100000
#: What ``ret`` returns to keep a whole datagram (the length to keep) or drop it.
ACCEPT: Final = 0xFFFFFFFF
DROP: Final = 0

_LD_W: Final = BPF_LD | BPF_W | BPF_ABS
_LD_H: Final = BPF_LD | BPF_H | BPF_ABS
_LD_B: Final = BPF_LD | BPF_B | BPF_ABS
_JEQ: Final = BPF_JMP | BPF_JEQ | BPF_K
_JA: Final = BPF_JMP | BPF_JA
_RET: Final = BPF_RET | BPF_K
_RSH: Final = BPF_ALU | BPF_RSH | BPF_K
_UDP_SOURCE_PORT: Final = 0
_PAYLOAD: Final = 8  # the UDP header is 8 bytes
_V4_SOURCE: Final = SKF_NET_OFF + 12
_V6_SOURCE: Final = SKF_NET_OFF + 8


class BpfInstruction(NamedTuple):
    """One ``struct sock_filter``: opcode, jump offsets if true / false, constant."""

    code: int
    jt: int
    jf: int
    k: int


def _check_host(instance: object, attribute: object, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"host must be an IP address literal, got {value!r}") from None


def _check_port(instance: object, attribute: object, value: int | None) -> None:
    if value is not None and (type(value) is not int or not 0 <= value <= 65535):
        raise ConfigError(f"port must be None or an integer in 0..65535, got {value!r}")


@attrs.frozen
class SourceRule:
    """A source the kernel drops: ``host`` (an IP literal), on ``port`` or
    every port (None); everything from it (``blocked``), or everything but
    datagrams whose first byte the filter keeps (a muted source, 04 §5.5)."""

    host: str = attrs.field(validator=_check_host)
    port: int | None = attrs.field(default=None, validator=_check_port)
    blocked: bool = False


class _Asm:
    """A tiny assembler: jumps name labels, resolved to relative offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, str | None, str | None, int | str]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int | str = 0, jt: str | None = None, jf: str | None = None) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def jump_if(self, k: int, label: str) -> None:
        """``if A == k: goto label``, for a label any distance ahead."""
        self.op(_JEQ, k, jf="+1")
        self.op(_JA, label)

    def assemble(self) -> tuple[BpfInstruction, ...]:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.code):
            offsets = [self._offset(i, j) for j in (jt, jf)]
            if max(offsets) > 255:  # cannot happen: conditional jumps are local
                raise AssertionError(f"BPF jump too far at {i}")
            value = self._offset(i, k) if isinstance(k, str) else k & 0xFFFFFFFF
            out.append(BpfInstruction(code, offsets[0], offsets[1], value))
        return tuple(out)

    def _offset(self, i: int, target: str | None) -> int:
        if target is None:
            return 0
        if target.startswith("+"):
            return int(target[1:])
        return self.labels[target] - i - 1


def source_filter_program(
    rules: Iterable[SourceRule], keep: bytes, *, ipv6_socket: bool
) -> tuple[BpfInstruction, ...]:
    """The classic BPF program that drops what ``rules`` name on a UDP socket.

    A datagram from a blocked rule's source is dropped; one from a muted
    rule's source is dropped unless its first payload byte is in ``keep``;
    everything else is accepted.  The first rule that names the source
    decides, so blocked rules go before muted ones.  An IPv4 socket
    (``ipv6_socket`` false) sees only IPv4 headers and ignores IPv6 rules; an
    IPv6 socket checks the IP version first (a dual-stack socket receives
    IPv4 datagrams with their IPv4 header).
    """
    ordered = sorted(rules, key=lambda r: not r.blocked)
    hosts = [(_unmapped(ipaddress.ip_address(r.host)), r) for r in ordered]
    a = _Asm()
    if ipv6_socket:
        a.op(_LD_B, SKF_NET_OFF)
        a.op(_RSH, 4)  # the IP version
        a.jump_if(6, "v6")
        a.op(_JEQ, 4, jt="+1")
        a.op(_RET, ACCEPT)
    a.op(_LD_W, _V4_SOURCE)
    n = 0
    for ip, rule in hosts:
        if ip.version != 4:
            continue
        n += 1
        action = "drop" if rule.blocked else "muted"
        (word,) = struct.unpack("!I", ip.packed)
        if rule.port is None:
            a.jump_if(word, action)
            continue
        a.op(_JEQ, word, jf=f"next{n}")
        a.op(_LD_H, _UDP_SOURCE_PORT)
        a.op(_JEQ, rule.port, jf="+1")
        a.op(_JA, action)
        a.op(_LD_W, _V4_SOURCE)  # A held the port: load the address again
        a.label(f"next{n}")
    if ipv6_socket:
        a.op(_RET, ACCEPT)
        a.label("v6")
        for ip, rule in hosts:
            if ip.version != 6:
                continue
            n += 1
            for i, (word,) in enumerate(struct.iter_unpack("!I", ip.packed)):
                a.op(_LD_W, _V6_SOURCE + 4 * i)
                a.op(_JEQ, word, jf=f"next{n}")
            if rule.port is not None:
                a.op(_LD_H, _UDP_SOURCE_PORT)
                a.op(_JEQ, rule.port, jf=f"next{n}")
            a.op(_JA, "drop" if rule.blocked else "muted")
            a.label(f"next{n}")
    a.op(_RET, ACCEPT)
    a.label("muted")
    a.op(_LD_B, _PAYLOAD)  # an empty datagram ends the program here: dropped
    for byte in sorted(set(keep)):
        a.op(_JEQ, byte, jt="accept")
    a.label("drop")
    a.op(_RET, DROP)
    a.label("accept")
    a.op(_RET, ACCEPT)
    return a.assemble()


_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _unmapped(ip: _IP) -> _IP:
    """An IPv4-mapped IPv6 address as the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def pack_bpf_program(program: Sequence[BpfInstruction]) -> bytes:
    """The program as the kernel's array of ``struct sock_filter`` (native order)."""
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)
