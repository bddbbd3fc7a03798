"""The kernel source filter (04-handshake.md §5.5): the program, run through a
small classic-BPF interpreter, and the UDP transport's filter on loopback."""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
from collections.abc import Sequence

import pytest
import trio
import trio.testing

from qdht.errors import ConfigError
from qdht.transport import (
    MAX_FILTER_SOURCES,
    BpfInstruction,
    SourceRule,
    UdpTransport,
    open_udp_transport,
    pack_bpf_program,
    source_filter_program,
)

KEEP = b"\xa4"
NET = 0x100000  # SKF_NET_OFF, negated


def _run(program: Sequence[BpfInstruction], source: str, port: int, payload: bytes) -> bool:
    """Run ``program`` on a UDP datagram as a socket filter sees it: True if kept.

    Loads at offsets from ``-SKF_NET_OFF`` read the IP header; others read from
    the UDP header on.  A load out of bounds ends the program with 0 (drop), as
    in the kernel.
    """
    ip = ipaddress.ip_address(source)
    udp = struct.pack("!HHHH", port, 9, 8 + len(payload), 0) + payload
    if ip.version == 4:
        net = bytes([0x45, 0]) + bytes(10) + ip.packed + bytes(4)
    else:
        net = bytes([0x60]) + bytes(7) + ip.packed + bytes(16)
    a, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code & 0x07 == 0x00:  # BPF_LD | size | BPF_ABS
            assert code & 0xE0 == 0x20, f"unexpected load mode {code:#x}"
            size = {0x00: 4, 0x08: 2, 0x10: 1}[code & 0x18]
            if k >= 1 << 31:
                data, off = net, k - (1 << 32) + NET
            else:
                data, off = udp, k
            if not 0 <= off <= len(data) - size:
                return False
            a = int.from_bytes(data[off : off + size], "big")
        elif code == 0x74:  # BPF_ALU | BPF_RSH | BPF_K
            a >>= k
        elif code == 0x05:  # BPF_JMP | BPF_JA
            pc += k
        elif code == 0x15:  # BPF_JMP | BPF_JEQ | BPF_K
            pc += jt if a == k else jf
        elif code == 0x06:  # BPF_RET | BPF_K
            return k != 0
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("ipv6_socket", [False, True])
def test_the_program_drops_exactly_what_its_rules_name(ipv6_socket: bool) -> None:
    rules = [
        SourceRule("10.0.0.1"),  # muted, every port
        SourceRule("10.0.0.2", 4000),  # muted, one port
        SourceRule("10.0.0.3", 5000, blocked=True),
        SourceRule("10.0.0.2", 4001, blocked=True),
    ]
    if ipv6_socket:
        rules += [SourceRule("2001:db8::1", 7000), SourceRule("2001:db8::2", blocked=True)]
    program = source_filter_program(rules, KEEP, ipv6_socket=ipv6_socket)

    def kept(source: str, port: int, payload: bytes) -> bool:
        return _run(program, source, port, payload)

    # Muted: dropped unless the first byte is kept (a session's transport packet).
    assert not kept("10.0.0.1", 1, b"garbage")
    assert kept("10.0.0.1", 1, b"\xa4session")
    assert not kept("10.0.0.1", 1, b"")  # no first byte
    assert not kept("10.0.0.2", 4000, b"garbage")
    assert kept("10.0.0.2", 4000, b"\xa4session")
    assert kept("10.0.0.2", 3999, b"garbage")  # another port of the host
    # Blocked: everything dropped.
    assert not kept("10.0.0.3", 5000, b"\xa4session")
    assert kept("10.0.0.3", 5001, b"garbage")
    assert not kept("10.0.0.2", 4001, b"\xa4session")
    # Everyone else is heard.
    assert kept("10.0.0.4", 4000, b"garbage")
    assert kept("10.0.0.4", 4000, b"")
    if ipv6_socket:
        assert not kept("2001:db8::1", 7000, b"garbage")
        assert kept("2001:db8::1", 7000, b"\xa4session")
        assert kept("2001:db8::1", 7001, b"garbage")
        assert not kept("2001:db8::2", 1, b"\xa4session")
        assert kept("2001:db8::3", 7000, b"garbage")
        # The IPv4 address in the same bytes of an IPv6 header is another source.
        assert kept("::a00:1", 1, b"garbage")


def test_a_blocked_rule_wins_over_a_muted_rule_of_the_same_source() -> None:
    rules = [SourceRule("10.0.0.1"), SourceRule("10.0.0.1", 9, blocked=True)]
    program = source_filter_program(rules, KEEP, ipv6_socket=False)
    assert not _run(program, "10.0.0.1", 9, b"\xa4session")
    assert _run(program, "10.0.0.1", 8, b"\xa4session")


def test_an_ipv4_mapped_rule_names_the_ipv4_source() -> None:
    program = source_filter_program([SourceRule("::ffff:10.0.0.1")], KEEP, ipv6_socket=True)
    assert not _run(program, "10.0.0.1", 1, b"garbage")


def test_a_full_program_keeps_its_jumps_in_range() -> None:
    # Jumps over every rule use BPF_JA; conditional offsets (8 bits) stay local.
    rules = [SourceRule(f"10.0.{i}.1", i) for i in range(MAX_FILTER_SOURCES // 2)]
    rules += [SourceRule(f"2001:db8::{i:x}", blocked=True) for i in range(MAX_FILTER_SOURCES // 2)]
    program = source_filter_program(rules, b"\xa4\xa5", ipv6_socket=True)
    assert len(program) <= 4096  # BPF_MAXINSNS
    assert len(pack_bpf_program(program)) == 8 * len(program)
    assert not _run(program, "10.0.31.1", 31, b"\xa6")
    assert _run(program, "10.0.31.1", 31, b"\xa5")
    assert not _run(program, "2001:db8::1f", 5, b"\xa4")
    assert _run(program, "2001:db8::20", 5, b"x")


def test_a_rule_with_a_bad_host_or_port_is_refused() -> None:
    with pytest.raises(ConfigError, match="host"):
        SourceRule("example.org")
    with pytest.raises(ConfigError, match="port"):
        SourceRule("10.0.0.1", 70000)


# -- on a real socket (Linux) ---------------------------------------------------

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SO_ATTACH_FILTER is Linux's")


def _sender(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    return sock


async def _drain(t: UdpTransport) -> list[tuple[bytes, str]]:
    """What ``t`` delivers of what is queued (loopback delivers as sendto returns)."""
    return [(data, addr.host) for data, addr in t.receive_queued(100)]


@linux_only
async def test_muted_and_blocked_sources_are_dropped_in_the_kernel() -> None:
    with _sender("127.0.0.2") as muted, _sender("127.0.0.3") as blocked:
        async with open_udp_transport("127.0.0.1", 0) as t:
            dst = (t.local_addresses[0].host, t.local_addresses[0].port)
            until = trio.current_time() + 60.0
            t.set_source_filter({muted.getsockname(): until}, KEEP, {blocked.getsockname(): until})
            assert t.stats()["kernel_filter_sources"] == 2
            for sock in (muted, blocked):
                sock.sendto(b"garbage", dst)
                sock.sendto(b"\xa4session", dst)
            assert await _drain(t) == [(b"\xa4session", "127.0.0.2")]
            stats = t.stats()
            assert stats["datagrams_dropped_in_kernel"] == 3
            assert "drop_source-muted" not in stats  # nothing reached Python to drop
            assert "drop_source-blocked" not in stats


@linux_only
async def test_a_source_muted_later_is_dropped_in_python_then_in_the_kernel(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with _sender("127.0.0.2") as flooder, _sender("127.0.0.3") as honest:
        async with open_udp_transport("127.0.0.1", 0) as t, trio.open_nursery() as nursery:
            dst = (t.local_addresses[0].host, t.local_addresses[0].port)
            muted: dict[object, float] = {}
            t.set_source_filter(muted, KEEP)
            assert t.stats()["kernel_filter_sources"] == 0
            got: list[tuple[bytes, str]] = []

            async def reader() -> None:
                while True:
                    data, addr = await t.receive()
                    got.append((data, addr.host))

            nursery.start_soon(reader)
            muted["127.0.0.2"] = trio.current_time() + 60.0  # as the session layer mutes
            for _ in range(3):
                flooder.sendto(b"garbage", dst)
            honest.sendto(b"hello", dst)
            # The filter is rebuilt at most every KERNEL_FILTER_INTERVAL: the
            # reader wakes for it.
            await trio.sleep(1.0)
            assert t.stats()["kernel_filter_sources"] == 1
            for _ in range(5):
                flooder.sendto(b"garbage", dst)
            honest.sendto(b"hello", dst)
            await trio.testing.wait_all_tasks_blocked()
            assert got == [(b"hello", "127.0.0.3")] * 2
            stats = t.stats()
            assert stats["drop_source-muted"] == 3
            assert stats["datagrams_dropped_in_kernel"] == 5
            nursery.cancel_scope.cancel()


@linux_only
async def test_the_kernel_hears_a_source_again_when_its_mute_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with _sender("127.0.0.2") as flooder:
        async with open_udp_transport("127.0.0.1", 0) as t, trio.open_nursery() as nursery:
            dst = (t.local_addresses[0].host, t.local_addresses[0].port)
            t.set_source_filter({"127.0.0.2": trio.current_time() + 5.0}, KEEP)
            flooder.sendto(b"garbage", dst)
            got: list[bytes] = []

            async def reader() -> None:
                while True:
                    got.append((await t.receive())[0])

            nursery.start_soon(reader)
            await trio.sleep(6.0)  # the receiver wakes when the rule ends
            assert t.stats()["kernel_filter_sources"] == 0
            flooder.sendto(b"heard again", dst)
            await trio.testing.wait_all_tasks_blocked()
            assert got == [b"heard again"]
            assert t.stats()["datagrams_dropped_in_kernel"] == 1
            nursery.cancel_scope.cancel()


@linux_only
async def test_at_most_max_filter_sources_go_to_the_kernel_the_rest_drop_in_python() -> None:
    n = MAX_FILTER_SOURCES + 6
    senders = [_sender(f"127.0.1.{i + 1}") for i in range(n)]
    try:
        async with open_udp_transport("127.0.0.1", 0) as t:
            dst = (t.local_addresses[0].host, t.local_addresses[0].port)
            now = trio.current_time()
            # With no drops seen yet, the mutes that last longest go to the kernel.
            muted = {f"127.0.1.{i + 1}": now + 10.0 + i for i in range(n)}
            t.set_source_filter(muted, KEEP)
            assert t.stats()["kernel_filter_sources"] == MAX_FILTER_SOURCES
            for sock in senders:
                sock.sendto(b"garbage", dst)
            assert await _drain(t) == []
            stats = t.stats()
            assert stats["drop_source-muted"] == 6
            assert stats["datagrams_dropped_in_kernel"] == MAX_FILTER_SOURCES
    finally:
        for sock in senders:
            sock.close()


@linux_only
async def test_the_filter_follows_a_rebind() -> None:
    with _sender("127.0.0.2") as flooder:
        async with open_udp_transport("127.0.0.1", 0) as t:
            t.set_source_filter({"127.0.0.2": trio.current_time() + 60.0}, KEEP)
            new = t.rebind()
            flooder.sendto(b"garbage", (new.host, new.port))
            assert await _drain(t) == []
            stats = t.stats()
            assert stats["datagrams_dropped_in_kernel"] == 1  # the new socket's counter
            assert "drop_source-muted" not in stats


async def test_without_the_kernel_filter_everything_drops_in_python() -> None:
    with _sender("127.0.0.2") as flooder:
        async with open_udp_transport("127.0.0.1", 0, kernel_filter=False) as t:
            dst = (t.local_addresses[0].host, t.local_addresses[0].port)
            t.set_source_filter({"127.0.0.2": trio.current_time() + 60.0}, KEEP)
            for _ in range(3):
                flooder.sendto(b"garbage", dst)
            assert await _drain(t) == []
            stats = t.stats()
            assert stats["drop_source-muted"] == 3
            assert stats["kernel_filter_sources"] == 0
            assert stats.get("datagrams_dropped_in_kernel", 0) == 0


def _v6_unavailable() -> str | None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.bind(("::", 0))
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"no dual-stack IPv6 loopback: {exc}"
    return None


@linux_only
@pytest.mark.skipif(_v6_unavailable() is not None, reason=_v6_unavailable() or "")
async def test_a_dual_stack_socket_drops_ipv4_and_ipv6_sources_in_the_kernel() -> None:
    with (
        _sender("127.0.0.2") as v4,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as other,
    ):
        v6.bind(("::1", 0))
        other.bind(("::1", 0))
        async with open_udp_transport("::", 0, dual_stack=True) as t:
            port = t.local_addresses[0].port
            until = trio.current_time() + 60.0
            # As the session layer keys them: an IPv4 sender by its IPv4 address,
            # a loopback sender with its port.
            t.set_source_filter({"127.0.0.2": until, ("::1", v6.getsockname()[1]): until}, KEEP)
            v4.sendto(b"garbage", ("127.0.0.1", port))
            v6.sendto(b"garbage", ("::1", port))
            v6.sendto(b"\xa4session", ("::1", port))
            other.sendto(b"hello", ("::1", port))
            assert await _drain(t) == [(b"\xa4session", "::1"), (b"hello", "::1")]
            assert t.stats()["datagrams_dropped_in_kernel"] == 2
