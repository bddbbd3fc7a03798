"""``qdht-bench NAME [options] [--json PATH]``: run one benchmark, print its table.

Each benchmark is a module ``qdht_bench.<module>`` with ``DESCRIPTION``,
``add_arguments(parser)`` and ``run(args) -> BenchResult``; register it in
``BENCHMARKS`` below.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Final

from qdht_bench._common import render_table, write_json
from qdht_bench._plot import plot_result

__all__ = ["BENCHMARKS", "main"]

#: benchmark name → module under qdht_bench.  One line per benchmark.
BENCHMARKS: Final[dict[str, str]] = {
    # -- benchmarks --
    "mobile": "mobile",
    "mixnet": "mixnet",
    "models": "models",
    "messaging": "messaging",
    "groups": "groups",
    "anonymity": "anonymity",
    "mix": "mix",
    "fl": "fl",
    "durability": "_durability",
    "adversarial": "_adversarial",
    "walk": "_walk",
    "fuzz": "_fuzz",
    "dos": "_dos",
    "records": "records_net",
    "records-store": "records_store",
    "dht-rpc": "dht_rpc",
    "records-validate": "records",
    "dht-sim": "dht_sim",
    "dht-vs-kademlia": "dht_vs_kademlia",
    "handshake": "handshake",
    "session": "session",
    "identity": "identity",
    "transport": "transport",
    "lint": "lint",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qdht-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="name", metavar="NAME")
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(f"qdht_bench.{module_name}")
        p = sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        p.add_argument("--json", type=Path, metavar="PATH", help="write metric → number JSON")
        p.add_argument("--plot", type=Path, metavar="PNG", help="draw the figures against targets")
        module.add_arguments(p)
        p.set_defaults(module=module)
    args = parser.parse_args(argv)
    # The command line as given, for a benchmark that re-runs itself (durability's
    # compiled core).
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    if args.name is None:
        parser.print_help()
        return 2
    result = args.module.run(args)
    print(render_table(result))
    if args.json is not None:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot_result(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
