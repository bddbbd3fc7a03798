"""Messaging: direct messages and groups (DESIGN §2, ``protocol-spec/12-groups.md``).

Sans-IO cores only; the node wires them to the DHT and the mixnet.
"""

# -- groups (12-groups.md) --
