"""The mixnet: post-quantum KEM-Sphinx packets, mixes and reply blocks (10-mixnet.md).

Sans-IO throughout: no trio import, no sockets, no clock.  A Trio driver owns
the sockets and the time and calls the cores in the aioquic shape.

Packet format (§2-§7)
    :class:`Geometry` fixes the path length (3 or 5) and payload size;
    :func:`create_packet`, :func:`unwrap`, :func:`create_surb`,
    :func:`surb_reply_packet` and :func:`open_surb_reply` are pure functions.
"""

from qdht.mixnet._geometry import DEFAULT_PAYLOAD_SIZE, Geometry
from qdht.mixnet._sphinx import (
    Deliver,
    Drop,
    Forward,
    PathHop,
    Surb,
    SurbKeys,
    create_packet,
    create_surb,
    open_surb_reply,
    replay_tag,
    surb_reply_packet,
    unwrap,
)

__all__ = [
    "DEFAULT_PAYLOAD_SIZE",
    "Deliver",
    "Drop",
    "Forward",
    "Geometry",
    "PathHop",
    "Surb",
    "SurbKeys",
    "create_packet",
    "create_surb",
    "open_surb_reply",
    "replay_tag",
    "surb_reply_packet",
    "unwrap",
]
