"""The mixnet: post-quantum KEM-Sphinx packets, mixes and reply blocks (10-mixnet.md).

Sans-IO throughout: no trio import, no sockets, no clock, randomness
injectable (``rng`` for bytes, ``random_source`` for draws).  ``now`` is Unix
time in seconds, because mix-key epochs are network-wide.

Packet format (§2-§7)
    :class:`Geometry` fixes the path length (3 or 5) and the payload size;
    :func:`create_packet`, :func:`unwrap`, :func:`create_surb`,
    :func:`surb_reply_packet` and :func:`open_surb_reply` are pure functions;
    :func:`encode_payload` / :func:`decode_payload` frame what a packet carries.

Mix role (§8) and client (§11)
    :class:`MixRole` and :class:`MixClient` have the aioquic shape a Trio
    driver calls::

        role.receive_packet(data, from_peer, now)    # a PACKET from a session
        role.receive_delivery(delivery, now)         # a DELIVERY for this node
        for out in role.packets_to_send(now):        # Outgoing(peer, message)
            send(out.peer, qdht.wire.encode(out.message))
        deadline = role.get_timer()                  # sleep until then ...
        role.handle_timer(now)                       # ... then call this
        while (event := role.next_event()) is not None: ...
        role.stats()                                 # counters, drops by reason

    A mix's events: :class:`MessageReceived` (it was a path's recipient, e.g.
    an exit asked to run a lookup; answer with ``role.reply(surb, data,
    now)``), :class:`KeysRotated` (publish a new descriptor),
    :class:`LoopAlarm` (too few of its loops came back: n-1 attack).  A
    client's: :class:`ReplyReceived` and :class:`LoopAlarm`.

Directory (§10)
    :func:`sign_descriptor`, :func:`verify_descriptor`,
    :class:`DirectoryAuthority`, :func:`sign_directory`,
    :func:`with_signatures`, :func:`verify_directory` (t of n signatures).

In a node (§14)
    ``Config(mixnet=MixnetConfig(...))`` runs the ``mixnet`` service
    (:func:`mixnet_service`): :class:`MixnetCore` is its sans-IO core, and
    :class:`AnonymousFace` (``node.anonymous``) its Trio side, whose tasks
    publish descriptors, sign and fetch directories and serve as an exit.
    Only that face imports trio.

Every parameter lives in :class:`MixnetConfig`.
"""

from qdht.mixnet import lioness
from qdht.mixnet._client import MixClient, ReplyReceived
from qdht.mixnet._config import MixnetConfig
from qdht.mixnet._directory import (
    DirectoryAuthority,
    sign_descriptor,
    sign_directory,
    usable_key,
    verify_descriptor,
    verify_directory,
    with_signatures,
)
from qdht.mixnet._face import (
    DESCRIPTOR_SALT,
    DIRECTORY_SALT,
    MIXES_TOPIC,
    AnonymousFace,
    directory_salt,
    mixnet_service,
)
from qdht.mixnet._fragments import (
    FRAGMENT_HEADER_SIZE,
    MAX_FRAGMENT_COUNT,
    MESSAGE_ID_SIZE,
    Fragment,
    Reassembled,
    Reassembler,
    fragment_chunk_size,
    fragment_count,
    parse_fragment,
    split_message,
)
from qdht.mixnet._geometry import (
    COMMANDS_SIZE,
    DEFAULT_PAYLOAD_SIZE,
    FRAMING_SIZE,
    MAC_SIZE,
    NODE_ID_SIZE,
    SURB_ID_SIZE,
    TAG_SIZE,
    VERSION,
    Geometry,
)
from qdht.mixnet._keys import EpochKey, MixKeyring, epoch_of
from qdht.mixnet._mix import LATENESS_SAMPLES, KeysRotated, MessageReceived, MixRole, Outgoing
from qdht.mixnet._payload import (
    KIND_COVER,
    KIND_MESSAGE,
    KIND_REPLY_FRAGMENT,
    KIND_REQUEST,
    KIND_REQUEST_FRAGMENT,
    Message,
    decode_payload,
    encode_payload,
)
from qdht.mixnet._replay import ReplayFilter
from qdht.mixnet._routes import (
    DirectoryView,
    LoopAlarm,
    LoopMonitor,
    Party,
    draw_delay_ms,
    select_path,
)
from qdht.mixnet._service import (
    MAX_HANDOFFS,
    MIXNET_MESSAGE_TYPES,
    AnonymousDone,
    AnonymousMessage,
    ExitReplied,
    ExitRequest,
    HandoffDone,
    MixnetCore,
)
from qdht.mixnet._sphinx import (
    MAX_DELAY_MS,
    Deliver,
    Drop,
    Encapsulate,
    Forward,
    HopKeys,
    PathHop,
    Surb,
    SurbKeys,
    cached_encapsulate,
    create_packet,
    create_surb,
    derive_hop_keys,
    open_surb_reply,
    replay_tag,
    surb_payload_keys,
    surb_reply_packet,
    unwrap,
)

__all__ = [
    "COMMANDS_SIZE",
    "DEFAULT_PAYLOAD_SIZE",
    "DESCRIPTOR_SALT",
    "DIRECTORY_SALT",
    "FRAGMENT_HEADER_SIZE",
    "FRAMING_SIZE",
    "KIND_COVER",
    "KIND_MESSAGE",
    "KIND_REPLY_FRAGMENT",
    "KIND_REQUEST",
    "KIND_REQUEST_FRAGMENT",
    "LATENESS_SAMPLES",
    "MAC_SIZE",
    "MAX_DELAY_MS",
    "MAX_FRAGMENT_COUNT",
    "MAX_HANDOFFS",
    "MESSAGE_ID_SIZE",
    "MIXES_TOPIC",
    "MIXNET_MESSAGE_TYPES",
    "NODE_ID_SIZE",
    "SURB_ID_SIZE",
    "TAG_SIZE",
    "VERSION",
    "AnonymousDone",
    "AnonymousFace",
    "AnonymousMessage",
    "Deliver",
    "DirectoryAuthority",
    "DirectoryView",
    "Drop",
    "Encapsulate",
    "EpochKey",
    "ExitReplied",
    "ExitRequest",
    "Forward",
    "Fragment",
    "Geometry",
    "HandoffDone",
    "HopKeys",
    "KeysRotated",
    "LoopAlarm",
    "LoopMonitor",
    "Message",
    "MessageReceived",
    "MixClient",
    "MixKeyring",
    "MixRole",
    "MixnetConfig",
    "MixnetCore",
    "Outgoing",
    "Party",
    "PathHop",
    "Reassembled",
    "Reassembler",
    "ReplayFilter",
    "ReplyReceived",
    "Surb",
    "SurbKeys",
    "cached_encapsulate",
    "create_packet",
    "create_surb",
    "decode_payload",
    "derive_hop_keys",
    "directory_salt",
    "draw_delay_ms",
    "encode_payload",
    "epoch_of",
    "fragment_chunk_size",
    "fragment_count",
    "lioness",
    "mixnet_service",
    "open_surb_reply",
    "parse_fragment",
    "replay_tag",
    "select_path",
    "sign_descriptor",
    "sign_directory",
    "split_message",
    "surb_payload_keys",
    "surb_reply_packet",
    "unwrap",
    "usable_key",
    "verify_descriptor",
    "verify_directory",
    "with_signatures",
]
