"""``qdht-bench walk``: every mode starts from the same network and victims."""

from __future__ import annotations

import argparse

from qdht_bench import _walk


def test_every_walk_mode_measures_the_same_victims() -> None:
    parser = argparse.ArgumentParser()
    _walk.add_arguments(parser)
    args = parser.parse_args(
        [
            "--nodes",
            "120",
            "--victims",
            "12",
            "--lying",
            "6",
            "--hours",
            "1.2",
            "--modes",
            "narrow,none",
        ]
    )
    result = _walk.run(args).metrics
    # The joins end long before the first walk (an hour after each node starts):
    # both modes see the same eclipsed newcomers, from the same seed.
    assert result["eclipsed_narrow"] == result["eclipsed_none"] > 0
    # An hour and more: the narrow walks ran, so the two modes' traffic differs.
    assert result["messages_narrow"] != result["messages_none"]
