"""The configuration of a node's web page: :class:`WebConfig`."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

import attrs

from qdht import validators
from qdht.errors import ConfigError

__all__ = ["WebConfig", "is_loopback", "parse_web_address"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only hosts served without a token."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_web_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` → (host, port); ConfigError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"web address must be HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _check_host(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not str or not value:
        raise ConfigError(f"{attribute.name} must be a host name or IP, got {value!r}")


def _check_port(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name} must be a port in 0..65535, got {value!r}")


def _check_token(_: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if type(value) is not str or not 16 <= len(value) <= 256 or not value.isascii():
        raise ConfigError(f"{attribute.name} must be 16..256 ASCII characters or None")


@attrs.frozen
class WebConfig:
    """Where the page listens and what bounds it.  Times in seconds.

    The page is served without a token only on a loopback address; on any
    other address a token is required (one is generated when ``token`` is
    None, read it from ``node.services.get("web").face.url``).
    """

    host: str = attrs.field(default="127.0.0.1", validator=_check_host)
    #: 0: an ephemeral port (the face's ``url`` says which).
    port: int = attrs.field(default=8080, validator=_check_port)
    token: str | None = attrs.field(default=None, validator=_check_token)
    #: HTTP requests and WebSockets open at once; more get 503.
    max_connections: int = attrs.field(default=32, validator=validators.positive_int)
    #: Of those, live WebSockets.
    max_websockets: int = attrs.field(default=8, validator=validators.positive_int)
    #: How often counters are sampled and live pages updated.
    update_interval: float = attrs.field(default=1.0, validator=validators.positive)
    #: Samples kept per time series (300 at 1 s: the last five minutes).
    history: int = attrs.field(default=300, validator=validators.positive_int)
    #: A WebSocket client that takes longer than this to take one update is closed.
    send_timeout: float = attrs.field(default=5.0, validator=validators.positive)
    #: Finished lookups kept for the page.
    recent_lookups: int = attrs.field(default=32, validator=validators.positive_int)
    #: Stored records listed (by key; all are counted).
    max_records_shown: int = attrs.field(default=64, validator=validators.positive_int)
    #: Largest request line and headers hypercorn buffers, bytes.
    max_request_size: int = attrs.field(default=16384, validator=validators.positive_int)

    def effective_token(self) -> str | None:
        """The token the page requires: the configured one, or a fresh one off loopback."""
        if self.token is not None or is_loopback(self.host):
            return self.token
        return secrets.token_urlsafe(24)
