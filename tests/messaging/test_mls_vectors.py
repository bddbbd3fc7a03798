"""The MLS working group's test vectors (RFC 9420) for cipher suite 3, byte for byte.

qdht's group layer shares suite 0x0003's symmetric half (HKDF-SHA256,
SHA-256, ChaCha20-Poly1305), so every vector file that exercises only that
half runs here unchanged.  Suite 3's asymmetric half (X25519 HPKE, Ed25519)
comes from ``cryptography`` in the tests only, to check SignWithLabel,
EncryptWithLabel and the signatures of the message-protection vectors.
``test_every_suite_3_case_is_exercised`` states how many cases each file
has for suite 3, so a filter that drops cases cannot pass silently.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from qdht.messaging import mls as protect
from qdht.messaging import mls as tree
from qdht.messaging.mls import (
    MLS_SUITE_3,
    NH,
    EpochSecrets,
    GroupContext,
    TLSReader,
    confirmation_tag,
    confirmed_transcript_hash,
    derive_secret,
    derive_tree_secret,
    encrypt_context,
    expand_with_label,
    exporter,
    extract,
    interim_transcript_hash,
    mac,
    opaque,
    psk_secret,
    ref_hash,
    u16,
    welcome_secret,
)

VECTORS = Path(__file__).resolve().parent / "vectors" / "mls"


def _suite3(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((VECTORS / f"{name}.json").read_text("utf-8"))
    return [case for case in cases if case.get("cipher_suite", MLS_SUITE_3) == MLS_SUITE_3]


def _b(value: str) -> bytes:
    return bytes.fromhex(value)


CRYPTO_BASICS = _suite3("crypto-basics")
KEY_SCHEDULE = _suite3("key-schedule")
SECRET_TREE = _suite3("secret-tree")
TRANSCRIPTS = _suite3("transcript-hashes")
PSK_SECRET = _suite3("psk_secret")
TREE_MATH = _suite3("tree-math")
MESSAGE_PROTECTION = _suite3("message-protection")
WELCOME = _suite3("welcome")
_X25519_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


def test_every_suite_3_case_is_exercised() -> None:
    # The counts of the vectors at mls-implementations@cfd4502: a changed file
    # or a filter that drops cases fails here instead of passing vacuously.
    assert len(CRYPTO_BASICS) == 1
    assert len(KEY_SCHEDULE) == 1
    assert len(KEY_SCHEDULE[0]["epochs"]) == 5
    assert len(SECRET_TREE) == 3
    assert len(TRANSCRIPTS) == 1
    assert len(PSK_SECRET) == 11
    assert len(TREE_MATH) == 10
    assert len(MESSAGE_PROTECTION) == 1
    assert len(WELCOME) == 1


# -- crypto-basics ---------------------------------------------------------------


def test_ref_hash() -> None:
    v = CRYPTO_BASICS[0]["ref_hash"]
    assert ref_hash(v["label"].encode(), _b(v["value"])).hex() == v["out"]


def test_expand_with_label() -> None:
    v = CRYPTO_BASICS[0]["expand_with_label"]
    out = expand_with_label(_b(v["secret"]), v["label"].encode(), _b(v["context"]), v["length"])
    assert out.hex() == v["out"]


def test_derive_secret() -> None:
    v = CRYPTO_BASICS[0]["derive_secret"]
    assert derive_secret(_b(v["secret"]), v["label"].encode()).hex() == v["out"]


def test_derive_tree_secret() -> None:
    v = CRYPTO_BASICS[0]["derive_tree_secret"]
    out = derive_tree_secret(_b(v["secret"]), v["label"].encode(), v["generation"], v["length"])
    assert out.hex() == v["out"]


def _ed25519_verify(pub: bytes, message: bytes, signature: bytes) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(signature, message)
    except InvalidSignature:
        return False
    return True


def test_sign_with_label() -> None:
    v = CRYPTO_BASICS[0]["sign_with_label"]
    message = protect.sign_content(v["label"].encode(), _b(v["content"]))
    assert _ed25519_verify(_b(v["pub"]), message, _b(v["signature"]))
    # Ed25519 is deterministic: signing again reproduces the vector's signature.
    key = ed25519.Ed25519PrivateKey.from_private_bytes(_b(v["priv"]))
    assert key.sign(message).hex() == v["signature"]


def test_encrypt_with_label() -> None:
    v = CRYPTO_BASICS[0]["encrypt_with_label"]
    priv = x25519.X25519PrivateKey.from_private_bytes(_b(v["priv"]))
    info = encrypt_context(v["label"].encode(), _b(v["context"]))
    opened = _X25519_SUITE.decrypt(_b(v["kem_output"]) + _b(v["ciphertext"]), priv, info)
    assert opened.hex() == v["plaintext"]
    sealed = _X25519_SUITE.encrypt(_b(v["plaintext"]), priv.public_key(), info)
    assert _X25519_SUITE.decrypt(sealed, priv, info).hex() == v["plaintext"]


# -- key-schedule --------------------------------------------------------------


def _x25519_derive_public(ikm: bytes) -> bytes:
    """RFC 9180 §7.1.3 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256): the public key."""
    suite_id = b"KEM" + u16(0x0020)
    prk = extract(b"", b"HPKE-v1" + suite_id + b"dkp_prk" + ikm)
    info = u16(32) + b"HPKE-v1" + suite_id + b"sk"
    sk = HKDFExpand(hashes.SHA256(), 32, info).derive(prk)
    return x25519.X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def test_key_schedule() -> None:
    case = KEY_SCHEDULE[0]
    group_id = _b(case["group_id"])
    init_secret = _b(case["initial_init_secret"])
    for epoch, v in enumerate(case["epochs"]):
        context = GroupContext(
            MLS_SUITE_3, group_id, epoch, _b(v["tree_hash"]), _b(v["confirmed_transcript_hash"])
        )
        assert context.serialize().hex() == v["group_context"]
        s = EpochSecrets.derive(init_secret, _b(v["commit_secret"]), _b(v["psk_secret"]), context)
        for name in (
            "joiner_secret",
            "welcome_secret",
            "init_secret",
            "sender_data_secret",
            "encryption_secret",
            "exporter_secret",
            "epoch_authenticator",
            "external_secret",
            "confirmation_key",
            "membership_key",
            "resumption_psk",
        ):
            assert getattr(s, name).hex() == v[name], (epoch, name)
        assert _x25519_derive_public(s.external_secret).hex() == v["external_pub"]
        x = v["exporter"]
        # The label is used as the ASCII text it is (the generator's choice), not hex-decoded.
        out = exporter(s.exporter_secret, x["label"].encode(), _b(x["context"]), x["length"])
        assert out.hex() == x["secret"]
        init_secret = s.init_secret


# -- psk_secret ----------------------------------------------------------------


@pytest.mark.parametrize("case", PSK_SECRET, ids=lambda c: f"{len(c['psks'])}psks")
def test_psk_secret(case: dict[str, Any]) -> None:
    psks = [(_b(p["psk_id"]), _b(p["psk_nonce"]), _b(p["psk"])) for p in case["psks"]]
    assert psk_secret(psks).hex() == case["psk_secret"]


# -- tree-math -----------------------------------------------------------------


@pytest.mark.parametrize("case", TREE_MATH, ids=lambda c: f"{c['n_leaves']}leaves")
def test_tree_math(case: dict[str, Any]) -> None:
    n = case["n_leaves"]
    assert tree.node_width(n) == case["n_nodes"]
    assert tree.root(n) == case["root"]

    def attempt(f: Any, *args: int) -> int | None:
        try:
            return int(f(*args))
        except Exception:
            return None

    for x in range(case["n_nodes"]):
        assert attempt(tree.left, x) == case["left"][x]
        assert attempt(tree.right, x) == case["right"][x]
        assert attempt(tree.parent, x, n) == case["parent"][x]
        assert attempt(tree.sibling, x, n) == case["sibling"][x]


# -- secret-tree ---------------------------------------------------------------


@pytest.mark.parametrize("case", SECRET_TREE, ids=lambda c: f"{len(c['leaves'])}leaves")
def test_secret_tree(case: dict[str, Any]) -> None:
    sd = case["sender_data"]
    sample = _b(sd["ciphertext"])[:NH]
    secret = _b(sd["sender_data_secret"])
    assert expand_with_label(secret, b"key", sample, 32).hex() == sd["key"]
    assert expand_with_label(secret, b"nonce", sample, 12).hex() == sd["nonce"]
    # ChaCha20-Poly1305 keys are 32 bytes, so the tree is built per the suite.
    secrets = tree.SecretTree(_b(case["encryption_secret"]), len(case["leaves"]))
    for leaf, generations in enumerate(case["leaves"]):
        for g in generations:
            key, nonce = secrets.handshake(leaf).get(g["generation"])
            assert (key.hex(), nonce.hex()) == (g["handshake_key"], g["handshake_nonce"])
            key, nonce = secrets.application(leaf).get(g["generation"])
            assert (key.hex(), nonce.hex()) == (g["application_key"], g["application_nonce"])


# -- transcript-hashes ---------------------------------------------------------


def test_transcript_hashes() -> None:
    v = TRANSCRIPTS[0]
    content = _b(v["authenticated_content"])
    # AuthenticatedContent ends with the commit's confirmation_tag<V> (32 bytes);
    # ConfirmedTranscriptHashInput is everything before it.
    assert content[-NH - 1] == NH
    confirmed_input, tag = content[: -NH - 1], content[-NH:]
    confirmed = confirmed_transcript_hash(_b(v["interim_transcript_hash_before"]), confirmed_input)
    assert confirmed.hex() == v["confirmed_transcript_hash_after"]
    assert confirmation_tag(_b(v["confirmation_key"]), confirmed) == tag
    assert interim_transcript_hash(confirmed, tag).hex() == v["interim_transcript_hash_after"]


# -- message-protection --------------------------------------------------------

_KINDS = {
    "application": protect.CONTENT_APPLICATION,
    "proposal": protect.CONTENT_PROPOSAL,
    "commit": protect.CONTENT_COMMIT,
}


def _context(v: dict[str, Any]) -> GroupContext:
    return GroupContext(
        MLS_SUITE_3,
        _b(v["group_id"]),
        v["epoch"],
        _b(v["tree_hash"]),
        _b(v["confirmed_transcript_hash"]),
    )


def _check_signature(v: dict[str, Any], wire_format: int, framed: bytes, signature: bytes) -> None:
    tbs = protect.framed_content_tbs(wire_format, framed, _context(v))
    message = protect.sign_content(b"FramedContentTBS", tbs)
    assert _ed25519_verify(_b(v["signature_pub"]), message, signature)


def _body(kind: str, expected: bytes) -> bytes:
    return opaque(expected) if kind == "application" else expected


@pytest.mark.parametrize("kind", ["proposal", "commit"])
def test_public_message(kind: str) -> None:
    v = MESSAGE_PROTECTION[0]
    expected = _b(v[kind])
    reader = TLSReader(_b(v[f"{kind}_pub"]))
    assert reader.uint(2) == 1
    assert reader.uint(2) == protect.WIRE_PUBLIC
    group_id, epoch = reader.opaque(), reader.uint(8)
    assert (group_id, epoch) == (_b(v["group_id"]), v["epoch"])
    assert reader.uint(1) == protect.SENDER_MEMBER
    leaf = reader.uint(4)
    authenticated_data = reader.opaque()
    assert reader.uint(1) == _KINDS[kind]
    body = reader.raw(len(expected))
    assert body == expected
    signature = reader.opaque()
    tag = reader.opaque() if kind == "commit" else None
    membership_tag = reader.opaque()
    reader.finish()
    framed = protect.framed_content(group_id, epoch, leaf, authenticated_data, _KINDS[kind], body)
    _check_signature(v, protect.WIRE_PUBLIC, framed, signature)
    auth = opaque(signature) + (opaque(tag) if tag is not None else b"")
    tbm = protect.framed_content_tbs(protect.WIRE_PUBLIC, framed, _context(v)) + auth
    assert mac(_b(v["membership_key"]), tbm) == membership_tag


def _open_private(v: dict[str, Any], kind: str, message: bytes) -> tuple[int, bytes]:
    reader = TLSReader(message)
    assert reader.uint(2) == 1
    assert reader.uint(2) == protect.WIRE_PRIVATE
    group_id, epoch, content_type = reader.opaque(), reader.uint(8), reader.uint(1)
    authenticated_data = reader.opaque()
    encrypted_sender_data, ciphertext = reader.opaque(), reader.opaque()
    reader.finish()
    assert content_type == _KINDS[kind]
    sender = protect.open_sender_data(
        _b(v["sender_data_secret"]),
        ciphertext,
        protect.sender_data_aad(group_id, epoch, content_type),
        encrypted_sender_data,
    )
    # The vectors' group has two members; the sender is one of them.
    secrets = tree.SecretTree(_b(v["encryption_secret"]), 2)
    ratchet = secrets.application if kind == "application" else secrets.handshake
    key, nonce = ratchet(sender.leaf_index).get(sender.generation)
    expected = _b(v[kind])
    body_len = len(_body(kind, expected))
    content = protect.open_content(
        key,
        nonce,
        sender.reuse_guard,
        protect.private_content_aad(group_id, epoch, content_type, authenticated_data),
        ciphertext,
        lambda _plain: body_len,
        has_tag=kind == "commit",
    )
    assert content.body == _body(kind, expected)
    framed = protect.framed_content(
        group_id, epoch, sender.leaf_index, authenticated_data, content_type, content.body
    )
    _check_signature(v, protect.WIRE_PRIVATE, framed, content.signature)
    return sender.leaf_index, content.body


@pytest.mark.parametrize("kind", ["application", "proposal", "commit"])
def test_private_message_opens(kind: str) -> None:
    v = MESSAGE_PROTECTION[0]
    _open_private(v, kind, _b(v[f"{kind}_priv"]))


def test_private_message_round_trip() -> None:
    v = MESSAGE_PROTECTION[0]
    group_id, epoch = _b(v["group_id"]), v["epoch"]
    data = _b(v["application"])
    key_pair = ed25519.Ed25519PrivateKey.from_private_bytes(_b(v["signature_priv"]))
    framed = protect.framed_content(
        group_id, epoch, 1, b"", protect.CONTENT_APPLICATION, opaque(data)
    )
    tbs = protect.framed_content_tbs(protect.WIRE_PRIVATE, framed, _context(v))
    signature = key_pair.sign(protect.sign_content(b"FramedContentTBS", tbs))
    generation, key, nonce = tree.SecretTree(_b(v["encryption_secret"]), 2).application(1).next()
    guard = b"\x01\x02\x03\x04"
    aad = protect.private_content_aad(group_id, epoch, protect.CONTENT_APPLICATION, b"")
    ciphertext = protect.seal_content(key, nonce, guard, aad, opaque(data), signature, padding=7)
    sender = protect.SenderData(1, generation, guard)
    sd_aad = protect.sender_data_aad(group_id, epoch, protect.CONTENT_APPLICATION)
    esd = protect.seal_sender_data(_b(v["sender_data_secret"]), ciphertext, sd_aad, sender)
    message = (
        u16(1)
        + u16(protect.WIRE_PRIVATE)
        + opaque(group_id)
        + epoch.to_bytes(8, "big")
        + bytes([protect.CONTENT_APPLICATION])
        + opaque(b"")
        + opaque(esd)
        + opaque(ciphertext)
    )
    assert _open_private(v, "application", message) == (1, opaque(data))


def test_hash_is_sha256() -> None:
    # RefHash above already pins SHA-256; this names the suite's hash for readers.
    assert ref_hash(b"", b"") == hashlib.sha256(b"\x00\x00").digest()


# -- welcome -------------------------------------------------------------------


def test_welcome() -> None:
    """Join from the vector's Welcome (RFC 9420 §12.4.3.1) as qdht's joiner does.

    The TLS structs are parsed here; the derivations are qdht's: KeyPackageRef,
    DecryptWithLabel of GroupSecrets, welcome_secret, the GroupInfo's AEAD,
    its GroupInfoTBS signature and the confirmation tag of the epoch joined.
    """
    v = WELCOME[0]
    key_package = _b(v["key_package"])
    assert key_package[:4] == u16(1) + u16(5)  # MLSMessage(mls_key_package)
    kp_ref = ref_hash(b"MLS 1.0 KeyPackage Reference", key_package[4:])
    reader = TLSReader(_b(v["welcome"]))
    assert reader.uint(2) == 1
    assert reader.uint(2) == 3  # mls_welcome
    assert reader.uint(2) == MLS_SUITE_3
    secrets = TLSReader(reader.opaque())
    encrypted_info = reader.opaque()
    reader.finish()
    assert secrets.opaque() == kp_ref
    kem_output, ciphertext = secrets.opaque(), secrets.opaque()
    secrets.finish()
    init = x25519.X25519PrivateKey.from_private_bytes(_b(v["init_priv"]))
    info = encrypt_context(b"Welcome", encrypted_info)
    group_secrets = TLSReader(_X25519_SUITE.decrypt(kem_output + ciphertext, init, info))
    joiner_secret = group_secrets.opaque()
    assert group_secrets.uint(1) == 0  # no path secret
    assert group_secrets.opaque() == b""  # no PSKs
    group_secrets.finish()
    secret = welcome_secret(joiner_secret, bytes(NH))
    key = expand_with_label(secret, b"key", b"", 32)
    nonce = expand_with_label(secret, b"nonce", b"", 12)
    group_info = ChaCha20Poly1305(key).decrypt(nonce, encrypted_info, b"")
    reader = TLSReader(group_info)
    assert reader.uint(2) == 1
    assert reader.uint(2) == MLS_SUITE_3
    group_id, epoch = reader.opaque(), reader.uint(8)
    tree_hash, cth, context_extensions = reader.opaque(), reader.opaque(), reader.opaque()
    reader.opaque()  # GroupInfo extensions (the ratchet tree)
    tag = reader.opaque()
    reader.uint(4)  # signer
    tbs_end = len(group_info) - reader.remaining
    signature = reader.opaque()
    reader.finish()
    message = protect.sign_content(b"GroupInfoTBS", group_info[:tbs_end])
    assert _ed25519_verify(_b(v["signer_pub"]), message, signature)
    context = GroupContext(MLS_SUITE_3, group_id, epoch, tree_hash, cth, context_extensions)
    assert context.serialize() == group_info[: len(context.serialize())]
    secrets_ = EpochSecrets.from_joiner(joiner_secret, bytes(NH), context)
    assert confirmation_tag(secrets_.confirmation_key, cth) == tag
