"""``qdht train demo``, ``coordinate``, ``join``: federated training from the command line.

``demo`` starts a coordinator and N device nodes on the in-memory network
(real nodes with the training and model-store services, in virtual time, so
a 60-second round takes as long as its computation), gives each device a
Dirichlet(0.5) share of scikit-learn's digits, runs DP-FedAvg rounds, prints
the test accuracy and epsilon after each round, and writes a PNG of both
against rounds (matplotlib, the ``plot`` extra).  ``coordinate`` runs the
rounds of a task on a real node (UDP): it prints its contact URI, waits for
devices to enrol, and coordinates; ``join`` makes a node a device of that
coordinator with a shard of the digits training set.  The model is softmax
regression on the 8x8 digits (650 parameters).  Needs ``pip install
'qdht[models,fl,dp]'`` (and ``plot`` for the demo's PNG).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio
import trio.testing

import qdht
from qdht.cli._client import _add_common as add_client_options
from qdht.cli._client import _listen_for, join
from qdht.cli._common import CommandError, parse_contacts, usage_error
from qdht.cli._output import Output
from qdht.cli._plot import require_matplotlib
from qdht.crypto.hashes import sha3_256
from qdht.errors import ConfigError
from qdht.identity import Identity

if TYPE_CHECKING:
    from qdht.models.training import RoundParams, RoundResult

__all__ = ["register"]

#: How long ``coordinate`` and ``join`` run at most (seconds; --timeout).
DEFAULT_TIMEOUT: Final = 3600.0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    train = sub.add_parser(
        "train",
        help="federated training: demo, coordinate, join",
        description=__doc__.split("\n\n")[1].replace("``", "") if __doc__ else None,
        parents=[common],
    )
    commands = train.add_subparsers(dest="train_command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="N simulated devices train on digits; prints accuracy and epsilon, plots them",
        description="Run a coordinator and --devices device nodes on the in-memory network "
        "for --rounds rounds of DP-FedAvg on scikit-learn's digits.",
        parents=[common],
    )
    demo.add_argument("--devices", type=int, default=20, metavar="N", help="default 20")
    demo.add_argument("--rounds", type=int, default=30, metavar="R", help="default 30")
    demo.add_argument("--seed", type=int, default=0, help="data split and models (default 0)")
    demo.add_argument(
        "--plot",
        type=Path,
        default=Path("qdht-train-demo.png"),
        metavar="PNG",
        help="where to write the plot (default qdht-train-demo.png)",
    )
    demo.add_argument("--no-plot", action="store_true", help="do not write the plot")
    demo.add_argument("--json", type=Path, metavar="F", help="write every round's figures to F")
    demo.add_argument(
        "--mixnet",
        action="store_true",
        help="devices send their updates through a 5-mix mixnet, signed (14-training.md 9.5)",
    )
    _add_round_options(demo, q=0.5)
    demo.set_defaults(run=run_demo)

    coordinate = commands.add_parser(
        "coordinate",
        help="coordinate the rounds of a task on this node",
        description="Start a node, print its contact URI, wait for --wait-devices devices "
        "to enrol for --task, then run --rounds rounds and print each one's outcome.",
        parents=[common],
    )
    coordinate.add_argument("--task", required=True, help="the task's name (devices use it too)")
    coordinate.add_argument("--rounds", type=int, default=10, metavar="R", help="default 10")
    coordinate.add_argument(
        "--wait-devices", type=int, default=2, metavar="N", help="devices to wait for (default 2)"
    )
    coordinate.add_argument(
        "--listen",
        default="udp://127.0.0.1:0",
        metavar="ADDR",
        help="address to listen on (default udp://127.0.0.1:0)",
    )
    _add_round_options(coordinate, q=1.0)
    add_client_options(coordinate, required=False, timeout=DEFAULT_TIMEOUT)
    coordinate.set_defaults(run=run_coordinate)

    device = commands.add_parser(
        "join",
        help="take part in a coordinator's rounds as a device",
        description="Join the network, enrol with the coordinator of --task, and train on "
        "shard --shard I/N of the digits training set in every round this node is sampled for.",
        parents=[common],
    )
    device.add_argument("--coordinator", required=True, metavar="URI", help="its contact URI")
    device.add_argument("--task", required=True, help="the task's name")
    device.add_argument("--shard", default="0/1", metavar="I/N", help="default 0/1")
    device.add_argument("--seed", type=int, default=0, help="local training (default 0)")
    add_client_options(device, required=False, timeout=DEFAULT_TIMEOUT)
    device.set_defaults(run=run_join)


def _add_round_options(p: argparse.ArgumentParser, *, q: float) -> None:
    p.add_argument("--q", type=float, default=q, help=f"sampling probability (default {q:g})")
    p.add_argument("--clip", type=float, default=1.0, help="L2 clipping bound S; 0: no DP")
    p.add_argument("--noise", type=float, default=1.0, help="noise multiplier z (default 1.0)")
    p.add_argument(
        "--epsilon-budget",
        type=float,
        default=math.inf,
        metavar="EPS",
        help="stop before a round would exceed it (delta 1e-5; default: no limit)",
    )
    p.add_argument("--secagg", action="store_true", help="sum updates with SecAgg+")
    p.add_argument(
        "--round-seconds", type=float, default=60.0, metavar="S", help="round duration (60)"
    )
    p.add_argument("--epochs", type=int, default=5, help="local epochs (default 5)")


def _params(args: argparse.Namespace, devices: int) -> RoundParams:
    from qdht.models.training import RoundParams

    try:
        return RoundParams(
            epochs=args.epochs,
            clip=args.clip,
            noise=args.noise if args.clip > 0 else 0.0,
            q=args.q,
            duration=args.round_seconds,
            secagg=args.secagg,
            # Half the expected cohort: with SecAgg each device adds noise of
            # std zS/sqrt(min), and any admissible sum carries at least zS.
            min_participants=max(3 if args.secagg else 1, round(0.5 * args.q * devices)),
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None


def _task(name: str) -> bytes:
    return sha3_256(b"qdht/cli/fl-task", name.encode())


def _training_imports() -> Any:
    """qdht.models.training, or a CommandError naming the extras when one is missing."""
    try:
        import dp_accounting  # noqa: F401 - the coordinator's accountant
        import sklearn  # noqa: F401 - the digits data

        from qdht.models import training
    except ImportError as exc:
        raise CommandError(
            f"qdht train needs {exc.name}: pip install 'qdht[models,fl,dp]'"
        ) from None
    return training


def _epsilon(result: RoundResult, params: RoundParams, digits: int = 3) -> str:
    if not params.dp:
        return "no DP"
    return "inf" if math.isinf(result.epsilon) else f"{result.epsilon:.{digits}f}"


def _row(result: RoundResult, params: RoundParams, accuracy: float, devices: int) -> list[str]:
    epsilon = _epsilon(result, params)
    state = f"abandoned ({result.reason})" if result.abandoned else "published"
    return [
        str(result.number),
        f"{result.participants}/{devices}",
        f"{accuracy:.3f}",
        epsilon,
        state,
    ]


# ---------------------------------------------------------------- demo


def run_demo(args: argparse.Namespace, out: Output) -> int:
    if not 2 <= args.devices <= 200:
        raise usage_error("--devices must be in 2..200")
    if not 1 <= args.rounds <= 1000:
        raise usage_error("--rounds must be in 1..1000")
    if not args.no_plot:
        require_matplotlib()
    training = _training_imports()
    params = _params(args, args.devices)
    import numpy as np
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as ProgressBar

    data = training.load_digits_split(args.seed)
    parts = training.split_dirichlet(
        data.y_train, args.devices, np.random.default_rng(args.seed), 0.5
    )
    trainer = training.SoftmaxRegression(64, 10)
    bar = ProgressBar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out.err_console,
        transient=True,
    )
    results: list[tuple[RoundResult, float]] = []
    started = time.monotonic()

    async def main() -> Any:
        with bar:
            task = bar.add_task("starting nodes", total=args.rounds)

            def on_round(result: RoundResult) -> None:
                accuracy = trainer.accuracy(result.model, data.x_test, data.y_test)
                results.append((result, accuracy))
                epsilon = _epsilon(result, params, 2)
                out.emit(
                    f"round {result.number:3d}  devices {result.participants:3d}  "
                    f"accuracy {accuracy:.3f}  epsilon {epsilon}"
                    + (f"  abandoned: {result.reason}" if result.abandoned else "")
                )
                bar.update(
                    task,
                    advance=1,
                    description=f"accuracy {accuracy:.3f}  epsilon {epsilon}",
                )

            return await _demo_network(training, args, params, data, parts, trainer, on_round)

    run, drops, anonymous = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    out.table(
        f"qdht train demo: {args.devices} devices, q={args.q:g}, z={params.noise:g}, "
        f"S={params.clip:g}, delta=1e-5" + (", SecAgg+" if args.secagg else ""),
        ["round", "devices", "accuracy", "epsilon", "model"],
        [_row(r, params, a, args.devices) for r, a in results],
    )
    if run.stopped:
        out.note(f"stopped after round {len(results) - 1}: the next would exceed the budget")
    if drops:
        out.note("dropped: " + ", ".join(f"{n} {reason}" for reason, n in sorted(drops.items())))
    if args.mixnet:
        out.note(f"{anonymous} signed messages reached the coordinator through mixnet exits")
    out.note(f"{len(results)} rounds in {time.monotonic() - started:.1f} s")
    if args.json is not None:
        report = {
            "devices": args.devices,
            "q": args.q,
            "noise": params.noise,
            "clip": params.clip,
            "delta": 1e-5,
            "secagg": args.secagg,
            "stopped": run.stopped,
            "rounds": [
                {
                    "round": r.number,
                    "participants": r.participants,
                    "accuracy": a,
                    "epsilon": r.epsilon if params.dp and math.isfinite(r.epsilon) else None,
                    "abandoned": r.abandoned,
                }
                for r, a in results
            ],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_plot and results:
        result = training.DemoResult(
            args.devices,
            [a for _, a in results],
            [r.epsilon for r, _ in results],
            [r.participants for r, _ in results],
            1e-5,
        )
        out.note(f"plot written to {training.plot_demo(result, args.plot)}")
    return 0


async def _demo_network(
    training: Any,
    args: argparse.Namespace,
    params: RoundParams,
    data: Any,
    parts: list[Any],
    trainer: Any,
    on_round: Any,
) -> Any:
    """The coordinator and the devices as nodes of one in-memory network."""
    import numpy as np

    from qdht.models import ModelsConfig
    from qdht.testing import MemoryNetwork

    net = MemoryNetwork(seed=args.seed)
    task = _task("demo")
    async with AsyncExitStack() as stack:
        nodes: list[qdht.Node] = []
        if args.mixnet:
            nodes = await _mixnet_nodes(stack, training, args, net)
        for i in range(0 if args.mixnet else args.devices + 1):
            transport = await stack.enter_async_context(net.open_transport())
            config = qdht.Config(
                identity=_demo_identity(args.seed, i),
                puzzle_difficulty=0,
                # The coordinator serves the model; devices fetch it and do not re-serve.
                models=ModelsConfig(announce=i == 0),
                training=training.TrainingLayerConfig(),
            )
            node = await stack.enter_async_context(qdht.open_node(config, transport=transport))
            if nodes:
                await node.bootstrap([nodes[0].contact])
            nodes.append(node)
        coordinator, devices = nodes[0], nodes[1:]
        key = coordinator.identity.mldsa.public_key_bytes()
        for i, (node, part) in enumerate(zip(devices, parts, strict=True)):
            await node.training.join(
                coordinator.contact,
                key,
                task,
                trainer,
                data.x_train[part],
                data.y_train[part],
                rng=np.random.default_rng([args.seed, i]),
            )
        budget = training.PrivacyBudget(args.epsilon_budget, 1e-5) if params.dp else None
        run = await coordinator.training.coordinate(
            task,
            trainer.init_params(np.random.default_rng(args.seed)),
            params,
            rounds=args.rounds,
            budget=budget,
            rng=np.random.default_rng([args.seed, 1]),
            on_round=on_round,
        )
        drops: collections.Counter[str] = collections.Counter()
        for node in nodes:
            drops.update(node.stats()["training"]["drops"])
        anonymous = coordinator.stats()["training"].get("received_anonymously", 0)
        return run, drops, anonymous


async def _mixnet_nodes(
    stack: AsyncExitStack, training: Any, args: argparse.Namespace, net: Any
) -> list[qdht.Node]:
    """Five mixes and an authority; the coordinator and the devices are its clients."""
    from qdht.identity import ResolveConfig
    from qdht.mixnet import MixnetConfig
    from qdht.models import ModelsConfig
    from qdht.testing import open_mix_network

    # One packet carries a signed update of the digits model; light cover traffic.
    mixnet = MixnetConfig(
        user_payload_size=8192,
        lambda_payload=1.0,
        lambda_loop=0.05,
        lambda_drop=0.05,
        lambda_mix_loop=0.05,
        lambda_dummy_lookup=0.0,
    )
    extra = {
        "models": ModelsConfig(),
        "resolve": ResolveConfig(),
        "training": training.TrainingLayerConfig(mixnet=True),
    }
    network = await stack.enter_async_context(
        open_mix_network(
            5, args.devices + 1, seed=args.seed, network=net, mixnet=mixnet, clients_config=extra
        )
    )
    await network.publish_directory()
    return network.clients


def _demo_identity(seed: int, index: int) -> Identity:
    """Node ``index``'s keys from ``seed``: the same seed samples the same devices."""
    from qdht.crypto.mldsa import MLDSAPrivateKey
    from qdht.crypto.xwing import XWingPrivateKey

    tag = b"qdht/cli/train-demo" + seed.to_bytes(8, "big", signed=True) + index.to_bytes(4, "big")
    return Identity(  # difficulty 0: any nonce solves the puzzle
        XWingPrivateKey.from_seed(sha3_256(tag, b"x-wing")),
        MLDSAPrivateKey.from_seed(sha3_256(tag, b"ml-dsa")),
        bytes(8),
        0,
    )


# ---------------------------------------------------------------- real nodes


def _check_timeout(args: argparse.Namespace) -> None:
    if not args.timeout > 0:
        raise usage_error("--timeout must be positive")


def run_coordinate(args: argparse.Namespace, out: Output) -> int:
    _check_timeout(args)
    contacts = parse_contacts(args.bootstrap)
    training = _training_imports()
    if args.wait_devices < 1:
        raise usage_error("--wait-devices must be positive")
    params = _params(args, args.wait_devices)
    import numpy as np

    from qdht.identity import ResolveConfig
    from qdht.models import ModelsConfig

    data = training.load_digits_split(0)
    trainer = training.SoftmaxRegression(64, 10)
    task = _task(args.task)
    try:
        config = qdht.Config(
            listen=(args.listen,),
            puzzle_difficulty=args.difficulty,
            models=ModelsConfig(),
            training=training.TrainingLayerConfig(),
            resolve=ResolveConfig(),
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None

    async def main() -> None:
        with trio.move_on_after(args.timeout):
            async with qdht.open_node(config) as node:
                out.emit(node.contact_uri)
                if contacts:
                    await join(node, contacts)
                out.note(f"waiting for {args.wait_devices} device(s) of task {args.task!r}")
                # Polls the DHT: enrolment is a record, there is no event to wait for.
                while len(found := await node.training.enrolled(task)) < args.wait_devices:  # noqa: ASYNC110
                    await trio.sleep(2.0)
                out.note(f"{len(found)} device(s) enrolled: starting")

                def on_round(result: RoundResult) -> None:
                    accuracy = trainer.accuracy(result.model, data.x_test, data.y_test)
                    out.emit("  ".join(_row(result, params, accuracy, len(found))))

                budget = training.PrivacyBudget(args.epsilon_budget, 1e-5) if params.dp else None
                run = await node.training.coordinate(
                    task,
                    trainer.init_params(np.random.default_rng(0)),
                    params,
                    rounds=args.rounds,
                    budget=budget,
                    on_round=on_round,
                )
                if run.stopped:
                    out.note("stopped: the next round would exceed the privacy budget")
                return
        raise CommandError(f"timed out after {args.timeout:g} s")

    trio.run(main)
    return 0


def run_join(args: argparse.Namespace, out: Output) -> int:
    _check_timeout(args)
    (coordinator,) = parse_contacts([args.coordinator], option="--coordinator")
    contacts = parse_contacts(args.bootstrap) or [coordinator]
    index, sep, count = args.shard.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise usage_error("--shard must be I/N with 0 <= I < N")
    training = _training_imports()
    import numpy as np

    from qdht.identity import ResolveConfig
    from qdht.models import ModelsConfig

    data = training.load_digits_split(0)
    part = training.split_iid(len(data.y_train), int(count), np.random.default_rng(0))[int(index)]
    try:
        config = qdht.Config(
            listen=_listen_for(contacts),
            puzzle_difficulty=args.difficulty,
            models=ModelsConfig(announce=False),
            training=training.TrainingLayerConfig(),
            resolve=ResolveConfig(),
        )
    except ConfigError as exc:
        raise usage_error(str(exc)) from None

    def on_round(announce: Any, outcome: str) -> None:
        out.emit(f"round {announce.round}: {outcome}")

    async def main() -> None:
        with trio.move_on_after(args.timeout):
            async with qdht.open_node(config) as node:
                await join(node, contacts)
                certificate = await node.resolve_identity(coordinator.node_id)
                await node.training.join(
                    coordinator,
                    certificate.mldsa_public,
                    _task(args.task),
                    training.SoftmaxRegression(64, 10),
                    data.x_train[part],
                    data.y_train[part],
                    rng=np.random.default_rng(args.seed),
                    on_round=on_round,
                )
                out.note(f"enrolled with {coordinator.node_id.hex()[:16]} for {args.task!r}")
                await trio.sleep_forever()
        out.note(f"stopped after {args.timeout:g} s")

    trio.run(main)
    return 0
