"""The group state machine (12 §4-§10): epochs, commits, ordering, forks, messages.

Sans-IO in the h11/aioquic shape: bytes and ``now`` in, bytes and events
out, no clock, no sockets, randomness from an injectable source.  The node
moves the bytes: it writes :attr:`CommitBundle.slot` into the epoch's commit
slot (compare-and-swap on an empty slot, 12 §7), puts each sealed secret and
Welcome where its receiver fetches it, and feeds what it reads back through
:meth:`Group.receive_commit` and :meth:`Group.open_message`.

Remote input never raises: it is refused, and counted under a reason in
``stats()["drops"]``; the group never advances on an invalid commit.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from qdht.crypto.hashes import sha3_256
from qdht.crypto.mldsa import MLDSAPrivateKey
from qdht.errors import ConfigError, CryptoError, DecodeError, GroupError
from qdht.messaging import _group_protect as protect
from qdht.messaging._group_hpke import LeafKey, encrypt_with_label
from qdht.messaging._group_lite import (
    FlatKeyDistribution,
    KeyDistribution,
    KeyPackageBundle,
    MemberKeys,
    check_signature,
    key_package_ref,
    leaf_ref,
    roster_hash,
    sealed_digest,
    verify_key_package,
)
from qdht.messaging._group_schedule import (
    NH,
    NK,
    NN,
    QDHT_SUITE,
    EpochSecrets,
    GroupContext,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_secret,
    expand_with_label,
    exporter,
    interim_transcript_hash,
    welcome_secret,
)
from qdht.messaging._group_tls import TLSReader, opaque, u16, u32
from qdht.messaging._group_tree import SecretTree
from qdht.wire import (
    BLANK_REF,
    MAX_MEMBERS,
    CborLimits,
    Commit,
    CommitSlot,
    GroupInfo,
    GroupMessage,
    GroupSecrets,
    KeyPackage,
    LeafNode,
    Proposal,
    SealedSecret,
    Welcome,
    decode,
    dumps_canonical,
    encode,
    loads_canonical,
)

__all__ = [
    "DEFAULT_KEEP_EPOCHS",
    "DEFAULT_PAD_SIZE",
    "DEFAULT_TURN_INTERVAL",
    "DEFAULT_WINDOW",
    "ApplicationMessage",
    "CommitBundle",
    "EpochChanged",
    "Equivocation",
    "ForkDetected",
    "Group",
    "GroupConfig",
    "GroupEvent",
    "GroupInvitations",
    "MemberAdded",
    "MemberRemoved",
    "Removed",
]

logger = logging.getLogger(__name__)

Random = Callable[[int], bytes]
#: Δ: how long readers collect commits for an epoch before keeping the lowest hash (s).
DEFAULT_WINDOW = 5.0
#: Size of the padded application data of every message (bytes), before the signature.
DEFAULT_PAD_SIZE = 2048
#: Old epochs kept for late messages and to resolve forks.
DEFAULT_KEEP_EPOCHS = 3
#: How long each committer waits for the one ranked before it (s, 12 §7.2).
DEFAULT_TURN_INTERVAL = 2.0
#: RFC 9420 wire format for qdht's commit framing (private use, 0xF000-0xFFFF).
WIRE_QDHT_COMMIT = 0xF001
#: FIPS 204 context of an application message's signature (SignWithLabel, 12 §9).
MESSAGE_CONTEXT = b"qdht/v1/group-message"
_ZERO = bytes(NH)


class _Refused(Exception):
    """Internal: remote input refused with ``reason`` (never leaves this module)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _non_negative(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{attribute.name} must be a non-negative number, got {value!r}")


def _pad(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 16 <= value <= 60000:
        raise ConfigError(f"{attribute.name} must be an integer in 16..60000, got {value!r}")


@attrs.frozen
class GroupConfig:
    """A member's group parameters (12 §7, §9); every member of a group should agree."""

    #: Δ: how long to collect commits for an epoch before keeping the lowest hash (s).
    window: float = attrs.field(default=DEFAULT_WINDOW, validator=_non_negative)
    #: Padded size of every message's application data (bytes).
    pad_size: int = attrs.field(default=DEFAULT_PAD_SIZE, validator=_pad)
    #: Old epochs kept for late messages and fork resolution.
    keep_epochs: int = attrs.field(
        default=DEFAULT_KEEP_EPOCHS,
        validator=[attrs.validators.instance_of(int), _non_negative],
    )
    #: Each committer's wait per rank before committing (s).
    turn_interval: float = attrs.field(default=DEFAULT_TURN_INTERVAL, validator=_non_negative)


# ------------------------------------------------------------------ events


@attrs.frozen
class EpochChanged:
    """The group entered ``epoch`` (every member who applied the same commit agrees on it).

    ``commit_hash`` names the commit that won; a committer sends the Welcomes
    of its :class:`CommitBundle` only when it is its own (12 §8).
    """

    epoch: int
    epoch_id: bytes = attrs.field(repr=False)
    epoch_authenticator: bytes = attrs.field(repr=False)
    commit_hash: bytes = attrs.field(repr=False)


@attrs.frozen
class MemberAdded:
    """A member joined at ``index``."""

    epoch: int
    index: int
    identity: bytes


@attrs.frozen
class MemberRemoved:
    """The member at ``index`` was removed."""

    epoch: int
    index: int
    identity: bytes


@attrs.frozen
class Removed:
    """This member was removed by the commit that moved the group past ``epoch``."""

    epoch: int


@attrs.frozen
class Equivocation:
    """``sender`` wrote two different valid commits for ``epoch`` (12 §7.3)."""

    epoch: int
    sender: int
    commits: tuple[bytes, ...]


@attrs.frozen
class ForkDetected:
    """Two branches of ``epoch`` (named by their epoch IDs, 12 §7.4) and how it ended.

    ``resolved`` is True when this member switched to (or stayed on) the
    winning branch, False when the fork is older than the epochs it keeps.
    """

    epoch: int
    ours: bytes
    theirs: bytes
    winner: bytes
    resolved: bool


GroupEvent = EpochChanged | MemberAdded | MemberRemoved | Removed | Equivocation | ForkDetected


@attrs.frozen
class ApplicationMessage:
    """A decrypted application message: who sent it (members only know), in which epoch."""

    epoch: int
    sender: int
    identity: bytes
    data: bytes


@attrs.frozen
class CommitBundle:
    """What a committer hands to the node (12 §6-§8).

    ``slot`` goes into the epoch's commit slot at ``slot_id``; ``sealed``
    maps each receiving leaf index to its sealed secret; ``welcomes`` maps
    each joiner's key-package reference to its Welcome.
    """

    epoch: int
    committer: int
    slot_id: bytes
    slot: bytes = attrs.field(repr=False)
    sealed: Mapping[int, bytes] = attrs.field(repr=False)
    welcomes: Mapping[bytes, bytes] = attrs.field(repr=False)
    commit_hash: bytes = attrs.field(repr=False)


# ------------------------------------------------------------------ epochs


@attrs.frozen(repr=False, slots=False)
class _Epoch:
    """Everything one member knows about one epoch (immutable; trees live apart)."""

    group_id: bytes
    number: int
    roster: tuple[LeafNode | None, ...]
    context: GroupContext
    secrets: EpochSecrets
    interim: bytes
    me: int
    keys: MemberKeys

    @functools.cached_property
    def epoch_id(self) -> bytes:
        # DMLS's epoch identifier: names the epoch to members only (12 §7.4).
        return derive_secret(self.secrets.epoch_secret, b"epoch")

    @functools.cached_property
    def slot_key(self) -> MLDSAPrivateKey:
        seed = expand_with_label(self.secrets.epoch_secret, b"qdht seq", b"", 32)
        return MLDSAPrivateKey.from_seed(seed)

    @functools.cached_property
    def slot_public_key(self) -> bytes:
        return self.slot_key.public_key_bytes()

    def commit_key(self) -> bytes:
        return expand_with_label(self.secrets.epoch_secret, b"qdht commit", b"", NK)

    def n_leaves(self) -> int:
        n = 1
        while n < len(self.roster):
            n *= 2
        return n

    def leaf(self, index: int) -> LeafNode | None:
        return self.roster[index] if 0 <= index < len(self.roster) else None


def _context(
    group_id: bytes, epoch: int, roster: Sequence[LeafNode | None], cth: bytes
) -> GroupContext:
    return GroupContext(QDHT_SUITE, group_id, epoch, roster_hash(roster), cth)


def _commit_hash(commit: Commit) -> bytes:
    return hashlib.sha256(encode(commit)).digest()


def _confirmed_input(commit: Commit) -> bytes:
    # ConfirmedTranscriptHashInput (RFC 9420 §8.2) with qdht's CBOR framing (12 §6.2).
    return u16(WIRE_QDHT_COMMIT) + opaque(commit.content_bytes()) + opaque(commit.signature)


def _first_epoch(group_id: bytes, keys: MemberKeys, init_secret: bytes) -> _Epoch:
    roster = (keys.leaf(),)
    context = _context(group_id, 0, roster, b"")
    secrets = EpochSecrets.derive(init_secret, _ZERO, _ZERO, context)
    tag = confirmation_tag(secrets.confirmation_key, b"")
    return _Epoch(group_id, 0, roster, context, secrets, interim_transcript_hash(b"", tag), 0, keys)


@attrs.frozen
class _Changes:
    added: tuple[int, ...]
    removed: tuple[tuple[int, bytes], ...]
    welcomes: tuple[tuple[int, KeyPackage], ...]


def _apply_proposals(
    state: _Epoch, commit_sender: int, committer_leaf: LeafNode, proposals: Sequence[Proposal]
) -> tuple[list[LeafNode | None], _Changes]:
    """The new roster (12 §5): updates, then removes, then adds into the first blanks."""
    roster: list[LeafNode | None] = list(state.roster)
    context = state.context.serialize()
    updated: set[int] = set()
    removed: list[tuple[int, bytes]] = []
    adds: list[KeyPackage] = []
    for p in proposals:
        sender_leaf = state.leaf(p.sender)
        if p.group_id != state.group_id or p.epoch != state.number or sender_leaf is None:
            raise _Refused("bad-proposal")
        if not check_signature(
            sender_leaf.signature_key, p.signed_bytes() + context, p.signature, Proposal.CONTEXT
        ):
            raise _Refused("bad-proposal")
        if p.op == "update":
            assert p.leaf is not None
            if p.sender == commit_sender or p.sender in updated:
                raise _Refused("bad-proposal")
            if p.leaf.identity != sender_leaf.identity or not _leaf_ok(p.leaf):
                raise _Refused("bad-proposal")
            updated.add(p.sender)
            roster[p.sender] = p.leaf
        elif p.op == "add":
            assert p.key_package is not None
            if not _key_package_ok(p.key_package):
                raise _Refused("bad-proposal")
            adds.append(p.key_package)
    for p in proposals:
        if p.op == "remove":
            target = p.removed
            assert target is not None
            if target == commit_sender or state.leaf(target) is None or roster[target] is None:
                raise _Refused("bad-proposal")
            old = state.roster[target]
            assert old is not None
            removed.append((target, old.identity))
            roster[target] = None
    committer = state.leaf(commit_sender)
    if committer is None or committer_leaf.identity != committer.identity:
        raise _Refused("bad-commit")
    if committer_leaf.encryption_key == committer.encryption_key:
        # The committer heals only with a fresh key (RFC 9420 §12.4.2's UpdatePath).
        raise _Refused("bad-commit")
    roster[commit_sender] = committer_leaf
    added: list[int] = []
    seen_refs: set[bytes] = set()
    present = {leaf_ref(leaf) for leaf in roster if leaf is not None}
    for kp in adds:
        ref = key_package_ref(kp)
        if ref in seen_refs or leaf_ref(kp.leaf) in present:
            raise _Refused("bad-proposal")
        seen_refs.add(ref)
        slot = next((i for i, leaf in enumerate(roster) if leaf is None), len(roster))
        if slot == len(roster):
            roster.append(kp.leaf)
        else:
            roster[slot] = kp.leaf
        added.append(slot)
    while roster and roster[-1] is None:
        roster.pop()
    if len(roster) > MAX_MEMBERS:
        raise _Refused("bad-proposal")
    changes = _Changes(tuple(added), tuple(removed), tuple(zip(added, adds, strict=True)))
    return roster, changes


def _leaf_ok(leaf: LeafNode) -> bool:
    return check_signature(
        leaf.signature_key, leaf.signed_bytes(), leaf.signature, LeafNode.CONTEXT
    )


def _key_package_ok(kp: KeyPackage) -> bool:
    try:
        verify_key_package(kp)
    except CryptoError:
        return False
    return True


def _recipients(
    roster: Sequence[LeafNode | None], committer: int, added: Iterable[int]
) -> list[tuple[int, LeafNode]]:
    skip = {committer, *added}
    return [(i, leaf) for i, leaf in enumerate(roster) if leaf is not None and i not in skip]


@attrs.frozen
class _Candidate:
    commit: Commit
    hash: bytes
    next: _Epoch | None  # None: the commit removes this member
    changes: _Changes


@attrs.define
class _Slot:
    opened_at: float
    candidates: dict[bytes, _Candidate] = attrs.field(factory=dict)
    decided: bytes | None = None


# ------------------------------------------------------------ saved state
#
# What a member writes to its data directory (12 §13): its kept epochs, the
# secret trees where their ratchets stand, pending commits and proposals.
# Local data, never on a wire: deterministic CBOR with a version.

_STATE_VERSION = 1
#: A saved state is local and large (rosters of kept epochs, skipped keys): its own limits.
_STATE_LIMITS = CborLimits(
    max_bytes=256 * 1024 * 1024, max_depth=16, max_container_len=1 << 20, max_items=1 << 24
)


def _keys_obj(keys: MemberKeys) -> list[bytes]:
    return [keys.leaf_seed, keys.signature_seed, keys.identity]


def _keys_from(obj: list[Any]) -> MemberKeys:
    leaf_seed, signature_seed, identity = obj
    return MemberKeys(bytes(leaf_seed), bytes(signature_seed), bytes(identity))


class _Writer:
    """Encodes epochs for a saved state: each distinct leaf once, an epoch that is
    also in the history by its position (a decided commit leads to one)."""

    def __init__(self, history: Sequence[_Epoch]) -> None:
        self.leaves: dict[bytes, int] = {}
        self._history = {id(e): i for i, e in enumerate(history)}

    def leaf(self, leaf: LeafNode | None) -> int | None:
        if leaf is None:
            return None
        return self.leaves.setdefault(encode(leaf), len(self.leaves))

    def epoch(self, epoch: _Epoch) -> list[object]:
        return [
            epoch.group_id,
            epoch.number,
            [self.leaf(leaf) for leaf in epoch.roster],
            list(attrs.astuple(epoch.context)),
            list(attrs.astuple(epoch.secrets)),
            epoch.interim,
            epoch.me,
            _keys_obj(epoch.keys),
        ]

    def next_epoch(self, epoch: _Epoch | None) -> object:
        if epoch is None:
            return None
        at = self._history.get(id(epoch))
        return at if at is not None else self.epoch(epoch)

    def candidate(self, candidate: _Candidate) -> list[object]:
        changes = candidate.changes
        return [
            encode(candidate.commit),
            candidate.hash,
            self.next_epoch(candidate.next),
            [
                list(changes.added),
                [[i, who] for i, who in changes.removed],
                [[i, encode(kp)] for i, kp in changes.welcomes],
            ],
        ]


class _Reader:
    """Decodes what :class:`_Writer` encoded."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves: list[LeafNode] = []
        for data in leaves:
            leaf = decode(data, expect=(LeafNode,))
            assert isinstance(leaf, LeafNode)
            self.leaves.append(leaf)
        self.history: list[_Epoch] = []

    def epoch(self, obj: list[Any]) -> _Epoch:
        group_id, number, roster, context, secrets, interim, me, keys = obj
        return _Epoch(
            bytes(group_id),
            int(number),
            tuple(None if i is None else self.leaves[i] for i in roster),
            GroupContext(*context),
            EpochSecrets(*secrets),
            bytes(interim),
            int(me),
            _keys_from(keys),
        )

    def candidate(self, obj: list[Any]) -> _Candidate:
        commit_data, digest, next_epoch, (added, removed, welcomes) = obj
        commit = decode(commit_data, expect=(Commit,))
        assert isinstance(commit, Commit)
        kps = [(int(i), decode(kp, expect=(KeyPackage,))) for i, kp in welcomes]
        changes = _Changes(
            tuple(int(i) for i in added),
            tuple((int(i), bytes(who)) for i, who in removed),
            tuple((i, kp) for i, kp in kps if isinstance(kp, KeyPackage)),
        )
        if next_epoch is None:
            following = None
        elif isinstance(next_epoch, int):
            following = self.history[next_epoch]
        else:
            following = self.epoch(next_epoch)
        return _Candidate(commit, bytes(digest), following, changes)


# ------------------------------------------------------------------- group


class Group:
    """One member's view of one group (12 §4): current epoch, kept epochs, pending commits.

    Construct with :meth:`create` (a new group) or through
    :meth:`GroupInvitations.receive_welcome` (joining one).
    """

    def __init__(
        self,
        first: _Epoch,
        *,
        config: GroupConfig | None = None,
        random: Random = os.urandom,
        key_distribution: KeyDistribution | None = None,
    ) -> None:
        config = config or GroupConfig()
        self._window = config.window
        self._pad_size = config.pad_size
        self._keep = config.keep_epochs
        self._turn = config.turn_interval
        self._random = random
        self._kd: KeyDistribution = key_distribution or FlatKeyDistribution()
        self._history: list[_Epoch] = [first]
        self._trees: dict[bytes, SecretTree] = {
            first.epoch_id: SecretTree(first.secrets.encryption_secret, first.n_leaves())
        }
        self._slots: dict[int, _Slot] = {}
        self._proposals: dict[bytes, Proposal] = {}
        self._pending_updates: dict[bytes, MemberKeys] = {}
        self._events: list[GroupEvent] = []
        self._drops: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()
        self._active = True

    @classmethod
    def create(
        cls,
        group_id: bytes,
        keys: MemberKeys,
        *,
        config: GroupConfig | None = None,
        random: Random = os.urandom,
        key_distribution: KeyDistribution | None = None,
    ) -> Group:
        """A new one-member group at epoch 0 (RFC 9420 §11, 12 §4.1)."""
        if type(group_id) is not bytes or not 1 <= len(group_id) <= 32:
            raise ConfigError("group_id must be 1..32 bytes")
        first = _first_epoch(group_id, keys, random(NH))
        return cls(first, config=config, random=random, key_distribution=key_distribution)

    def dump(self) -> bytes:
        """This member's state, for its data directory (12 §13): the kept epochs,
        their secret trees as they stand, pending commits and proposals.

        Holds every secret the member still needs, and none it deleted: an
        epoch older than ``keep_epochs``, a used message key, a consumed tree
        node are not in it.
        """
        return dumps_canonical(self._state_obj())

    def dump_parts(self) -> tuple[bytes, bytes]:
        """:meth:`dump` in two parts: everything but the secret trees, and the trees.

        Sealing or opening a message changes only the trees (a few hundred
        bytes), the rest (every member's keys, commits on their way: about
        200 KB at 10 members) changes at commits; a store that writes the
        first part only when it changed saves that much per message.
        :meth:`load` takes the two back (``trees=``).
        """
        obj = self._state_obj()
        trees = {"v": _STATE_VERSION, "trees": obj["trees"]}
        obj["trees"] = []
        return dumps_canonical(obj), dumps_canonical(trees)

    def _state_obj(self) -> dict[str, Any]:
        writer = _Writer(self._history)
        history = [writer.epoch(e) for e in self._history]
        slots = [
            [n, slot.decided, [writer.candidate(c) for c in slot.candidates.values()]]
            for n, slot in sorted(self._slots.items())
        ]
        return {
            "v": _STATE_VERSION,
            "leaves": list(writer.leaves),
            "history": history,
            "trees": [[eid, tree.to_obj()] for eid, tree in sorted(self._trees.items())],
            "slots": slots,
            "proposals": [encode(p) for p in self._proposals.values()],
            "updates": [[ref, _keys_obj(k)] for ref, k in self._pending_updates.items()],
            "active": self._active,
        }

    @classmethod
    def load(
        cls,
        data: bytes,
        now: float,
        *,
        config: GroupConfig | None = None,
        random: Random = os.urandom,
        key_distribution: KeyDistribution | None = None,
        trees: bytes | None = None,
    ) -> Group:
        """The member :meth:`dump` saved; ConfigError if ``data`` is not such a state.

        With ``trees``, ``data`` and ``trees`` are the two parts of
        :meth:`dump_parts`.  An undecided commit slot reopens its window Δ at
        ``now``: the clock of the process that saved it means nothing here.
        """
        try:
            obj = loads_canonical(data, _STATE_LIMITS)
            if obj["v"] != _STATE_VERSION:
                raise ConfigError(f"unknown group state version {obj['v']!r}")
            if trees is not None:
                part = loads_canonical(trees, _STATE_LIMITS)
                if part["v"] != _STATE_VERSION:
                    raise ConfigError(f"unknown group trees version {part['v']!r}")
                obj["trees"] = part["trees"]
            reader = _Reader(obj["leaves"])
            history = [reader.epoch(e) for e in obj["history"]]
            reader.history = history
            group = cls(history[0], config=config, random=random, key_distribution=key_distribution)
            group._history = history
            group._trees = {bytes(eid): SecretTree.from_obj(t) for eid, t in obj["trees"]}
            for n, decided, candidates in obj["slots"]:
                slot = _Slot(now, decided=None if decided is None else bytes(decided))
                for c in candidates:
                    candidate = reader.candidate(c)
                    slot.candidates[candidate.hash] = candidate
                group._slots[int(n)] = slot
            for p in obj["proposals"]:
                proposal = decode(p, expect=(Proposal,))
                assert isinstance(proposal, Proposal)
                group._proposals[hashlib.sha256(p).digest()] = proposal
            for ref, k in obj["updates"]:
                group._pending_updates[bytes(ref)] = _keys_from(k)
            group._active = bool(obj["active"])
        except (KeyError, TypeError, ValueError, IndexError, DecodeError) as exc:
            raise ConfigError(f"not a saved group state: {exc}") from None
        return group

    # -- views ---------------------------------------------------------

    @property
    def _state(self) -> _Epoch:
        return self._history[-1]

    @property
    def group_id(self) -> bytes:
        """The group's ID."""
        return self._state.group_id

    @property
    def epoch(self) -> int:
        """The current epoch number."""
        return self._state.number

    @property
    def epoch_id(self) -> bytes:
        """The current epoch's ID (DMLS), known to members only."""
        return self._state.epoch_id

    @property
    def epoch_authenticator(self) -> bytes:
        """RFC 9420's epoch authenticator: equal for every member of the same epoch."""
        return self._state.secrets.epoch_authenticator

    @property
    def index(self) -> int:
        """This member's leaf index."""
        return self._state.me

    @property
    def active(self) -> bool:
        """False once this member has been removed."""
        return self._active

    def members(self) -> dict[int, bytes]:
        """Leaf index → identity of the current roster."""
        return {i: leaf.identity for i, leaf in enumerate(self._state.roster) if leaf is not None}

    def leaf(self, index: int) -> LeafNode | None:
        """The current leaf at ``index`` (None if blank): what the roster record holds."""
        return self._state.leaf(index)

    def slot_id(self) -> bytes:
        """The address of the current epoch's commit slot: SHA3-256 of its public key."""
        return sha3_256(self._state.slot_public_key)

    def slot_key(self) -> MLDSAPrivateKey:
        """The current epoch's slot signing key (12 §4): every member holds it, and the
        node signs the slot's DHT records with it."""
        return self._state.slot_key

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """MLS-Exporter of the current epoch (RFC 9420 §8.5)."""
        return exporter(self._state.secrets.exporter_secret, label, context, length)

    def committer_delay(self) -> float:
        """How long to wait before committing this epoch: turn order by H(epoch_id ‖ leaf)."""
        state = self._state
        ranked = sorted(
            (hashlib.sha256(state.epoch_id + u32(i)).digest(), i)
            for i, leaf in enumerate(state.roster)
            if leaf is not None
        )
        rank = next(r for r, (_, i) in enumerate(ranked) if i == state.me)
        return rank * self._turn

    def stats(self) -> dict[str, object]:
        """Counters: ``drops`` by reason, forks, equivocations, epoch and size."""
        return {
            "epoch": self.epoch,
            "members": len(self.members()),
            "drops": dict(self._drops),
            **dict(self._counts),
        }

    def next_event(self) -> GroupEvent | None:
        """The oldest event not yet taken, or None."""
        return self._events.pop(0) if self._events else None

    def _drop(self, reason: str) -> None:
        self._drops[reason] += 1
        logger.debug("group %s: dropped input: %s", self.group_id.hex()[:8], reason)

    def _require_active(self) -> None:
        if not self._active:
            raise GroupError("this member was removed from the group")

    # -- proposals -----------------------------------------------------

    def _sign_proposal(self, op: str, **operand: object) -> Proposal:
        self._require_active()
        state = self._state
        unsigned = Proposal(
            state.group_id,
            state.number,
            state.me,
            op,
            bytes(3309),
            **operand,  # type: ignore[arg-type]
        )
        message = unsigned.signed_bytes() + state.context.serialize()
        sig = state.keys.signing_key().sign(message, Proposal.CONTEXT)
        proposal = attrs.evolve(unsigned, signature=sig)
        self._proposals[hashlib.sha256(encode(proposal)).digest()] = proposal
        return proposal

    def propose_add(self, key_package: KeyPackage) -> Proposal:
        """A signed proposal to add the owner of ``key_package``; GroupError if it is invalid."""
        verify_key_package(key_package)
        return self._sign_proposal("add", key_package=key_package)

    def propose_remove(self, index: int) -> Proposal:
        """A signed proposal to remove the member at ``index``."""
        if self._state.leaf(index) is None or index == self.index:
            raise GroupError(f"no other member at leaf {index}")
        return self._sign_proposal("remove", removed=index)

    def propose_leave(self) -> Proposal:
        """A signed proposal removing this member, for another member to commit (12 §12)."""
        self._require_active()
        if len(self.members()) < 2:
            raise GroupError("the last member cannot leave: no one would commit it")
        return self._sign_proposal("remove", removed=self.index)

    def propose_update(self) -> Proposal:
        """A signed proposal replacing this member's leaf keys (post-compromise healing)."""
        keys = MemberKeys.generate(self._state.keys.identity, self._random)
        leaf = keys.leaf()
        self._pending_updates[leaf_ref(leaf)] = keys
        return self._sign_proposal("update", leaf=leaf)

    def receive_proposal(self, data: bytes) -> Proposal | None:
        """Keep a member's proposal for the next commit; None (and a drop) if refused."""
        try:
            proposal = decode(data, expect=(Proposal,))
        except DecodeError:
            self._drop("decode")
            return None
        assert isinstance(proposal, Proposal)
        state = self._state
        sender = state.leaf(proposal.sender)
        if proposal.group_id != state.group_id or proposal.epoch != state.number:
            self._drop("wrong-epoch")
            return None
        if sender is None:
            self._drop("not-member")
            return None
        message = proposal.signed_bytes() + state.context.serialize()
        if not check_signature(sender.signature_key, message, proposal.signature, Proposal.CONTEXT):
            self._drop("bad-signature")
            return None
        self._proposals[hashlib.sha256(data).digest()] = proposal
        return proposal

    # -- commits -------------------------------------------------------

    def commit(self, now: float, proposals: Sequence[Proposal] | None = None) -> CommitBundle:
        """Commit ``proposals`` (default: every valid one held) with a fresh leaf for self.

        The commit becomes a candidate here as if read from the slot: this
        member moves on only when the ordering rule picks it (12 §7).
        """
        self._require_active()
        state = self._state
        chosen = list(self._proposals.values()) if proposals is None else list(proposals)
        # Our own update proposals are superseded by the commit's fresh leaf.
        chosen = [
            p
            for p in chosen
            if p.epoch == state.number and not (p.op == "update" and p.sender == state.me)
        ]
        new_keys = MemberKeys.generate(state.keys.identity, self._random)
        new_leaf = new_keys.leaf()
        if proposals is None:
            chosen = self._compatible(state, new_leaf, chosen)
        try:
            roster, changes = _apply_proposals(state, state.me, new_leaf, chosen)
        except _Refused as refused:
            raise GroupError(f"cannot commit these proposals: {refused.reason}") from None
        if state.me in {i for i, _ in changes.removed}:
            raise GroupError("a member cannot commit its own removal")
        commit_secret = self._random(NH)
        provisional = _context(
            state.group_id, state.number + 1, roster, state.context.confirmed_transcript_hash
        )
        sealed = self._kd.seal(
            commit_secret, _recipients(roster, state.me, changes.added), provisional
        )
        unsigned = Commit(
            state.group_id,
            state.number,
            state.me,
            tuple(chosen),
            new_leaf,
            tuple((s.to, sealed_digest(s)) for s in sealed),
            bytes(3309),
            _ZERO,
        )
        sig = state.keys.signing_key().sign(
            unsigned.content_bytes() + state.context.serialize(), Commit.CONTEXT
        )
        signed = attrs.evolve(unsigned, signature=sig)
        next_epoch, tag = self._next_epoch(
            state, signed, roster, provisional, commit_secret, new_keys
        )
        commit = attrs.evolve(signed, confirmation_tag=tag)
        welcomes = self._welcomes(next_epoch, commit, changes)
        slot = self._seal_slot(state, commit)
        candidate = _Candidate(commit, _commit_hash(commit), next_epoch, changes)
        self._add_candidate(state, candidate, now)
        return CommitBundle(
            state.number,
            state.me,
            self.slot_id(),
            slot,
            {s.to: encode(s) for s in sealed},
            welcomes,
            candidate.hash,
        )

    def _compatible(
        self, state: _Epoch, new_leaf: LeafNode, held: Sequence[Proposal]
    ) -> list[Proposal]:
        """The held proposals that apply together, in order: two members removing
        the same one, or a proposal about someone another one removes, keep the first."""
        kept: list[Proposal] = []
        for proposal in held:
            try:
                _, changes = _apply_proposals(state, state.me, new_leaf, [*kept, proposal])
            except _Refused:
                continue
            if state.me not in {i for i, _ in changes.removed}:
                kept.append(proposal)
        return kept

    def _next_epoch(
        self,
        state: _Epoch,
        commit: Commit,
        roster: Sequence[LeafNode | None],
        provisional: GroupContext,
        commit_secret: bytes,
        my_keys: MemberKeys,
    ) -> tuple[_Epoch, bytes]:
        cth = confirmed_transcript_hash(state.interim, _confirmed_input(commit))
        # The provisional context already holds the new roster's hash.
        context = attrs.evolve(provisional, confirmed_transcript_hash=cth)
        secrets = EpochSecrets.derive(state.secrets.init_secret, commit_secret, _ZERO, context)
        tag = confirmation_tag(secrets.confirmation_key, cth)
        epoch = _Epoch(
            state.group_id,
            state.number + 1,
            tuple(roster),
            context,
            secrets,
            interim_transcript_hash(cth, tag),
            state.me,
            my_keys,
        )
        return epoch, tag

    def _welcomes(self, epoch: _Epoch, commit: Commit, changes: _Changes) -> dict[bytes, bytes]:
        if not changes.welcomes:
            return {}
        unsigned = GroupInfo(
            epoch.group_id,
            epoch.number,
            tuple(BLANK_REF if leaf is None else leaf_ref(leaf) for leaf in epoch.roster),
            epoch.context.confirmed_transcript_hash,
            commit.confirmation_tag,
            epoch.me,
            bytes(3309),
        )
        sig = epoch.keys.signing_key().sign(unsigned.signed_bytes(), GroupInfo.CONTEXT)
        info = encode(attrs.evolve(unsigned, signature=sig))
        wkey = expand_with_label(epoch.secrets.welcome_secret, b"key", b"", NK)
        wnonce = expand_with_label(epoch.secrets.welcome_secret, b"nonce", b"", NN)
        encrypted_info = ChaCha20Poly1305(wkey).encrypt(wnonce, info, b"")
        secrets = encode(GroupSecrets(epoch.secrets.joiner_secret))
        out = {}
        for _, kp in changes.welcomes:
            kem, ct = encrypt_with_label(kp.init_key, b"Welcome", encrypted_info, secrets)
            ref = key_package_ref(kp)
            out[ref] = encode(Welcome(ref, kem, ct, encrypted_info))
        return out

    def _seal_slot(self, state: _Epoch, commit: Commit) -> bytes:
        key = state.slot_key
        pk = state.slot_public_key
        nonce = self._random(12)
        ct = ChaCha20Poly1305(state.commit_key()).encrypt(nonce, encode(commit), pk)
        unsigned = CommitSlot(pk, nonce, ct, bytes(3309))
        sig = key.sign(unsigned.signed_bytes(), CommitSlot.CONTEXT)
        return encode(attrs.evolve(unsigned, signature=sig))

    def receive_commit(self, slot: bytes, sealed: bytes | None, now: float) -> None:
        """A commit read from a commit slot, with this member's sealed secret if it has one.

        A valid commit for the current epoch becomes a candidate (applied by
        :meth:`handle_timer` once the window Δ has passed); one for a kept
        older epoch may reveal a fork (12 §7.4).  Anything else is dropped.
        """
        if not self._active:
            self._drop("removed")
            return
        try:
            state, commit = self._open_slot(slot)
            candidate = self._evaluate(state, commit, sealed)
        except _Refused as refused:
            self._drop(refused.reason)
            return
        if state is self._state:
            self._add_candidate(state, candidate, now)
        else:
            self._late_commit(state, candidate)

    def _open_slot(self, data: bytes) -> tuple[_Epoch, Commit]:
        try:
            slot = decode(data, expect=(CommitSlot,))
        except DecodeError:
            raise _Refused("decode") from None
        assert isinstance(slot, CommitSlot)
        state = next(
            (s for s in reversed(self._history) if s.slot_public_key == slot.public_key),
            None,
        )
        if state is None:
            # Not a slot of any epoch this member knows: a non-member, a removed
            # member or an epoch long gone.
            raise _Refused("wrong-slot")
        if not check_signature(
            slot.public_key, slot.signed_bytes(), slot.signature, CommitSlot.CONTEXT
        ):
            raise _Refused("bad-slot-signature")
        try:
            plain = ChaCha20Poly1305(state.commit_key()).decrypt(
                slot.nonce, slot.ciphertext, slot.public_key
            )
        except InvalidTag:
            raise _Refused("bad-ciphertext") from None
        try:
            commit = decode(plain, expect=(Commit,))
        except DecodeError:
            raise _Refused("decode") from None
        assert isinstance(commit, Commit)
        if commit.group_id != state.group_id or commit.epoch != state.number:
            raise _Refused("wrong-epoch")
        return state, commit

    def _evaluate(self, state: _Epoch, commit: Commit, sealed_data: bytes | None) -> _Candidate:
        """Check every part of ``commit`` against ``state``; the next epoch it leads to."""
        digest = _commit_hash(commit)
        slot = self._slots.get(state.number)
        if slot is not None and digest in slot.candidates:
            raise _Refused("replay")
        sender = state.leaf(commit.sender)
        if sender is None:
            raise _Refused("not-member")
        message = commit.content_bytes() + state.context.serialize()
        if not check_signature(sender.signature_key, message, commit.signature, Commit.CONTEXT):
            raise _Refused("bad-signature")
        if not _leaf_ok(commit.leaf):
            raise _Refused("bad-commit")
        roster, changes = _apply_proposals(state, commit.sender, commit.leaf, commit.proposals)
        expected = [i for i, _ in _recipients(roster, commit.sender, changes.added)]
        if [to for to, _ in commit.secrets] != expected:
            raise _Refused("bad-commit")
        if state.me in {i for i, _ in changes.removed}:
            return _Candidate(commit, digest, None, changes)
        if commit.sender == state.me:
            # Our own commit coming back from the slot, or one a stolen copy of our
            # old state cannot know the secret of: never a candidate from here.
            raise _Refused("own-commit-unknown")
        my_keys = self._my_keys_after(state, commit)
        if sealed_data is None:
            raise _Refused("missing-secret")
        try:
            sealed = decode(sealed_data, expect=(SealedSecret,))
        except DecodeError:
            raise _Refused("decode") from None
        assert isinstance(sealed, SealedSecret)
        if sealed.to != state.me or dict(commit.secrets).get(state.me) != sealed_digest(sealed):
            raise _Refused("bad-secret")
        provisional = _context(
            state.group_id, state.number + 1, roster, state.context.confirmed_transcript_hash
        )
        try:
            commit_secret = self._kd.open(sealed, my_keys.leaf_key(), provisional)
        except GroupError:
            raise _Refused("bad-secret") from None
        next_epoch, tag = self._next_epoch(
            state, commit, roster, provisional, commit_secret, my_keys
        )
        if tag != commit.confirmation_tag:
            raise _Refused("bad-confirmation-tag")
        return _Candidate(commit, digest, next_epoch, changes)

    def _my_keys_after(self, state: _Epoch, commit: Commit) -> MemberKeys:
        for p in commit.proposals:
            if p.op == "update" and p.sender == state.me:
                assert p.leaf is not None
                keys = self._pending_updates.get(leaf_ref(p.leaf))
                if keys is None:
                    raise _Refused("unknown-update")
                return keys
        return state.keys

    def _add_candidate(self, state: _Epoch, candidate: _Candidate, now: float) -> None:
        slot = self._slots.setdefault(state.number, _Slot(now))
        if slot.decided is not None:
            raise AssertionError("a decided slot belongs to an older epoch")
        others = [
            c.hash for c in slot.candidates.values() if c.commit.sender == candidate.commit.sender
        ]
        slot.candidates[candidate.hash] = candidate
        if others:
            self._equivocation(state.number, candidate.commit.sender, [*others, candidate.hash])

    def withdraw(self, commit_hash: bytes) -> bool:
        """Take back this member's own commit ``commit_hash`` that never reached the slot.

        For a node whose slot write every holder refused (the slot was
        taken): nobody else can see that commit, so it must not win here
        either (12 §7.3).  False if it is not an undecided candidate of ours.
        """
        slot = self._slots.get(self.epoch)
        if slot is None or slot.decided is not None:
            return False
        candidate = slot.candidates.get(commit_hash)
        if candidate is None or candidate.commit.sender != self._state.me:
            return False
        del slot.candidates[commit_hash]
        if not slot.candidates:
            del self._slots[self.epoch]  # the next candidate opens a new window
        return True

    def _equivocation(self, epoch: int, sender: int, hashes: list[bytes]) -> None:
        self._counts["equivocations"] += 1
        self._drop("equivocation")
        self._events.append(Equivocation(epoch, sender, tuple(sorted(hashes))))

    # -- ordering ------------------------------------------------------

    def get_timer(self) -> float | None:
        """When :meth:`handle_timer` has work: the end of the current slot's window."""
        slot = self._slots.get(self.epoch)
        if slot is None or slot.decided is not None or not slot.candidates:
            return None
        return slot.opened_at + self._window

    def handle_timer(self, now: float) -> None:
        """Apply the current epoch's winning commit once its window has passed (12 §7.3)."""
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return
        slot = self._slots[self.epoch]
        winner = slot.candidates[min(slot.candidates)]
        slot.decided = winner.hash
        self._apply(winner)

    def _apply(self, candidate: _Candidate) -> None:
        old = self._state
        if candidate.next is None:
            self._active = False
            self._events.append(Removed(old.number))
            return
        new = candidate.next
        self._history.append(new)
        self._trees[new.epoch_id] = SecretTree(new.secrets.encryption_secret, new.n_leaves())
        while len(self._history) > self._keep + 1:
            gone = self._history.pop(0)
            self._trees.pop(gone.epoch_id, None)
            self._slots.pop(gone.number, None)
        self._proposals = {k: p for k, p in self._proposals.items() if p.epoch >= new.number}
        for index, identity in candidate.changes.removed:
            self._events.append(MemberRemoved(new.number, index, identity))
        for index in candidate.changes.added:
            leaf = new.roster[index]
            assert leaf is not None
            self._events.append(MemberAdded(new.number, index, leaf.identity))
        self._events.append(
            EpochChanged(new.number, new.epoch_id, new.secrets.epoch_authenticator, candidate.hash)
        )

    def _late_commit(self, state: _Epoch, candidate: _Candidate) -> None:
        """A valid commit for an older, kept epoch: the fork rule of 12 §7.4."""
        slot = self._slots[state.number]
        same_sender = [
            c.hash for c in slot.candidates.values() if c.commit.sender == candidate.commit.sender
        ]
        slot.candidates[candidate.hash] = candidate
        if same_sender:
            self._equivocation(
                state.number, candidate.commit.sender, [*same_sender, candidate.hash]
            )
        decided = slot.decided
        assert decided is not None
        if candidate.commit.sender in {i for i, _ in slot.candidates[decided].changes.removed}:
            # A member removed in this epoch cannot undo it with a late commit (12 §7.4).
            self._drop("removed-sender")
            return
        ours = slot.candidates[decided].next
        theirs = candidate.next
        ours_id = ours.epoch_id if ours is not None else b""
        theirs_id = theirs.epoch_id if theirs is not None else b""
        self._counts["forks"] += 1
        if candidate.hash > decided:
            # The other branch loses: its members switch to ours when they see it.
            self._drop("slot-taken")
            self._events.append(ForkDetected(state.number + 1, ours_id, theirs_id, ours_id, True))
            return
        # Ours loses: rewind to ``state`` and take the winning branch.
        while self._history[-1] is not state:
            gone = self._history.pop()
            self._trees.pop(gone.epoch_id, None)
            self._slots.pop(gone.number, None)
        slot.decided = candidate.hash
        self._events.append(ForkDetected(state.number + 1, ours_id, theirs_id, theirs_id, True))
        self._apply(candidate)

    # -- application messages -------------------------------------------

    def seal_message(self, data: bytes) -> bytes:
        """An application message to the group (12 §9), padded to ``pad_size``.

        GroupError if ``data`` does not fit the padding.
        """
        self._require_active()
        state = self._state
        body = opaque(data)
        if len(body) > self._pad_size:
            raise GroupError(f"message of {len(data)} bytes does not fit pad_size {self._pad_size}")
        app = protect.CONTENT_APPLICATION
        framed = protect.framed_content(state.group_id, state.number, state.me, b"", app, body)
        tbs = protect.framed_content_tbs(protect.WIRE_PRIVATE, framed, state.context)
        signature = state.keys.signing_key().sign(
            protect.sign_content(b"FramedContentTBS", tbs), MESSAGE_CONTEXT
        )
        generation, key, nonce = self._trees[state.epoch_id].application(state.me).next()
        guard = self._random(protect.REUSE_GUARD_SIZE)
        aad = protect.private_content_aad(state.group_id, state.number, app, b"")
        ciphertext = protect.seal_content(
            key, nonce, guard, aad, body, signature, padding=self._pad_size - len(body)
        )
        sender_data = protect.seal_sender_data(
            state.secrets.sender_data_secret,
            ciphertext,
            protect.sender_data_aad(state.group_id, state.number, app),
            protect.SenderData(state.me, generation, guard),
        )
        return encode(GroupMessage(state.epoch_id, sender_data, ciphertext))

    def open_message(self, data: bytes) -> ApplicationMessage | None:
        """The decrypted message, or None (and a drop) if it is not a valid one for us."""
        try:
            message = decode(data, expect=(GroupMessage,))
        except DecodeError:
            self._drop("decode")
            return None
        assert isinstance(message, GroupMessage)
        state = next((s for s in self._history if s.epoch_id == message.epoch_id), None)
        if state is None or message.epoch_id not in self._trees:
            self._drop("unknown-epoch")
            return None
        app = protect.CONTENT_APPLICATION
        try:
            sender = protect.open_sender_data(
                state.secrets.sender_data_secret,
                message.ciphertext,
                protect.sender_data_aad(state.group_id, state.number, app),
                message.sender_data,
            )
        except GroupError:
            self._drop("bad-sender-data")
            return None
        leaf = state.leaf(sender.leaf_index)
        if leaf is None:
            self._drop("not-member")
            return None
        ratchet = self._trees[message.epoch_id].application(sender.leaf_index)
        try:
            key, nonce = ratchet.get(sender.generation)
        except GroupError:
            self._drop("stale-generation")
            return None
        aad = protect.private_content_aad(state.group_id, state.number, app, b"")
        try:
            content = protect.open_content(
                key,
                nonce,
                sender.reuse_guard,
                aad,
                message.ciphertext,
                protect.application_body_length,
                has_tag=False,
            )
        except GroupError:
            self._drop("bad-ciphertext")
            return None
        framed = protect.framed_content(
            state.group_id, state.number, sender.leaf_index, b"", app, content.body
        )
        tbs = protect.framed_content_tbs(protect.WIRE_PRIVATE, framed, state.context)
        signed = protect.sign_content(b"FramedContentTBS", tbs)
        if not check_signature(leaf.signature_key, signed, content.signature, MESSAGE_CONTEXT):
            self._drop("bad-signature")
            return None
        ratchet.delete(sender.generation)
        data = TLSReader(content.body).opaque()
        return ApplicationMessage(state.number, sender.leaf_index, leaf.identity, data)


class GroupInvitations:
    """The joiner's side (12 §8): its key packages, and the Welcomes that use them."""

    def __init__(
        self,
        *,
        config: GroupConfig | None = None,
        random: Random = os.urandom,
        key_distribution: KeyDistribution | None = None,
    ) -> None:
        self._random = random
        self._bundles: dict[bytes, KeyPackageBundle] = {}
        self._config = config
        self._kd = key_distribution
        self._drops: Counter[str] = Counter()

    def new_key_package(self, identity: bytes) -> KeyPackage:
        """A fresh key package to publish; its private keys stay here until used."""
        bundle = KeyPackageBundle.generate(identity, self._random)
        self._bundles[bundle.ref] = bundle
        return bundle.key_package

    def stats(self) -> dict[str, object]:
        """Counters: ``drops`` by reason."""
        return {"drops": dict(self._drops), "key_packages": len(self._bundles)}

    def pending(self) -> list[bytes]:
        """The references of the key packages still waiting for a Welcome."""
        return list(self._bundles)

    def dump(self) -> bytes:
        """The unused key packages and their private keys, for the data directory."""
        bundles = [
            [encode(b.key_package), _keys_obj(b.member), b.init_seed]
            for b in self._bundles.values()
        ]
        return dumps_canonical({"v": _STATE_VERSION, "bundles": bundles})

    def restore(self, data: bytes) -> None:
        """Take back the key packages :meth:`dump` saved; ConfigError if it is not such data."""
        try:
            obj = loads_canonical(data, _STATE_LIMITS)
            if obj["v"] != _STATE_VERSION:
                raise ConfigError(f"unknown invitations version {obj['v']!r}")
            for kp_data, keys, init_seed in obj["bundles"]:
                kp = decode(kp_data, expect=(KeyPackage,))
                assert isinstance(kp, KeyPackage)
                bundle = KeyPackageBundle(kp, _keys_from(keys), bytes(init_seed))
                self._bundles[bundle.ref] = bundle
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise ConfigError(f"not saved invitations: {exc}") from None

    def receive_welcome(
        self, data: bytes, leaves: Mapping[bytes, LeafNode], now: float
    ) -> Group | None:
        """Join with a Welcome; ``leaves`` maps leaf references to leaves read from the roster.

        None (and a drop) if the Welcome is not for one of our key packages,
        does not decrypt, or does not check out.
        """
        try:
            group = self._join(data, leaves)
        except _Refused as refused:
            self._drops[refused.reason] += 1
            return None
        return group

    def roster_refs(self, data: bytes) -> list[bytes]:
        """The leaf references of the roster a Welcome for us names (blanks left out):
        the leaves to fetch before :meth:`receive_welcome`.  Empty if it is not ours."""
        try:
            _, _, info = self._open_welcome(data)
        except _Refused:
            return []
        return [ref for ref in info.roster if ref != BLANK_REF]

    def _open_welcome(self, data: bytes) -> tuple[Welcome, GroupSecrets, GroupInfo]:
        try:
            welcome = decode(data, expect=(Welcome,))
        except DecodeError:
            raise _Refused("decode") from None
        assert isinstance(welcome, Welcome)
        bundle = self._bundles.get(welcome.key_package_ref)
        if bundle is None:
            raise _Refused("welcome-not-for-us")
        try:
            plain = LeafKey(bundle.init_seed).decrypt(
                b"Welcome", welcome.info, welcome.kem_output, welcome.secrets
            )
            secrets = decode(plain, expect=(GroupSecrets,))
        except (GroupError, DecodeError):
            raise _Refused("bad-welcome") from None
        assert isinstance(secrets, GroupSecrets)
        wsecret = welcome_secret(secrets.joiner_secret, _ZERO)
        wkey = expand_with_label(wsecret, b"key", b"", NK)
        wnonce = expand_with_label(wsecret, b"nonce", b"", NN)
        try:
            info = decode(
                ChaCha20Poly1305(wkey).decrypt(wnonce, welcome.info, b""), expect=(GroupInfo,)
            )
        except (InvalidTag, DecodeError):
            raise _Refused("bad-welcome") from None
        assert isinstance(info, GroupInfo)
        return welcome, secrets, info

    def _join(self, data: bytes, leaves: Mapping[bytes, LeafNode]) -> Group:
        welcome, secrets, info = self._open_welcome(data)
        bundle = self._bundles[welcome.key_package_ref]
        roster: list[LeafNode | None] = []
        for ref in info.roster:
            if ref == BLANK_REF:
                roster.append(None)
                continue
            leaf = leaves.get(ref)
            if leaf is None or leaf_ref(leaf) != ref:
                raise _Refused("missing-leaf")
            roster.append(leaf)
        my_ref = leaf_ref(bundle.key_package.leaf)
        if my_ref not in info.roster:
            raise _Refused("not-in-roster")
        signer = roster[info.signer] if info.signer < len(roster) else None
        if signer is None or not check_signature(
            signer.signature_key, info.signed_bytes(), info.signature, GroupInfo.CONTEXT
        ):
            raise _Refused("bad-signature")
        context = _context(info.group_id, info.epoch, roster, info.confirmed_transcript_hash)
        epoch_secrets = EpochSecrets.from_joiner(secrets.joiner_secret, _ZERO, context)
        tag = confirmation_tag(epoch_secrets.confirmation_key, info.confirmed_transcript_hash)
        if tag != info.confirmation_tag:
            raise _Refused("bad-confirmation-tag")
        del self._bundles[welcome.key_package_ref]
        first = _Epoch(
            info.group_id,
            info.epoch,
            tuple(roster),
            context,
            epoch_secrets,
            interim_transcript_hash(info.confirmed_transcript_hash, tag),
            info.roster.index(my_ref),
            bundle.member,
        )
        return Group(first, config=self._config, random=self._random, key_distribution=self._kd)
