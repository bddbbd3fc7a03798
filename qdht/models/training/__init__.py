"""Federated training: local trainers, aggregation, DP, compression, SecAgg, rounds.

Implements ``protocol-spec/14-training.md``.  The cores are sans-IO: time
is an argument, randomness is injectable, nothing touches a socket.  The
``training`` service (``Config.training``, ``node.training``: :class:`TrainingCore`
and its Trio face :class:`TrainingFace`, §9) runs them on a node, with the
model store carrying each round's model.
"""

from typing import TYPE_CHECKING

from qdht.models.training._aggregate import (
    AGGREGATOR_NAMES,
    Aggregator,
    CoordinateMedian,
    FedAvg,
    Krum,
    TrimmedMean,
    aggregator_by_name,
)
from qdht.models.training._compress import (
    QuantizedUpdate,
    SparseUpdate,
    TopK,
    dequantize,
    quantize,
)
from qdht.models.training._data import (
    Dataset,
    load_digits_split,
    split_dirichlet,
    split_iid,
    split_shards,
)
from qdht.models.training._demo import DemoResult, plot_demo, run_demo
from qdht.models.training._face import (
    CoordinatedRun,
    TrainingFace,
    enrol_topic,
    training_model_name,
    training_service,
)
from qdht.models.training._gossip import GossipLearner
from qdht.models.training._privacy import (
    PrivacyAccountant,
    PrivacyBudget,
    clip_update,
    distributed_noise_std,
    dp_fedavg,
    gaussian_noise,
)
from qdht.models.training._round import (
    RoundCoordinator,
    RoundDevice,
    RoundParams,
    RoundResult,
    is_sampled,
    model_hash,
    round_id,
)
from qdht.models.training._secagg import (
    SecAggCoordinator,
    SecAggDevice,
    default_neighbours,
    graph_neighbours,
    quantize_for_sum,
)
from qdht.models.training._service import (
    ANONYMOUS_TRAINING_TYPES,
    TRAINING_MESSAGE_TYPES,
    RoundEnded,
    RoundJoined,
    SendAnonymously,
    TrainingCore,
    TrainingLayerConfig,
)
from qdht.models.training._shamir import (
    PRIME,
    SHARE_BYTES,
    consistent,
    reconstruct,
    share_from_bytes,
    share_to_bytes,
    split,
)
from qdht.models.training._simulation import FederatedRun, SecAggRun, run_federated, simulate_secagg
from qdht.models.training._trainer import (
    MLP,
    NumpyTrainer,
    Params,
    SoftmaxRegression,
    Trainer,
    TrainingConfig,
    check_data,
    check_params,
)

if TYPE_CHECKING:
    from qdht.models.training._torch import TorchTrainer


def __getattr__(name: str) -> object:
    """``TorchTrainer`` imports torch (the ``torch`` extra) only when first asked for."""
    if name == "TorchTrainer":
        try:
            from qdht.models.training._torch import TorchTrainer
        except ImportError as exc:
            from qdht.errors import ConfigError

            raise ConfigError("TorchTrainer needs PyTorch: pip install 'qdht[torch]'") from exc
        return TorchTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AGGREGATOR_NAMES",
    "ANONYMOUS_TRAINING_TYPES",
    "MLP",
    "PRIME",
    "SHARE_BYTES",
    "TRAINING_MESSAGE_TYPES",
    "Aggregator",
    "CoordinateMedian",
    "CoordinatedRun",
    "Dataset",
    "DemoResult",
    "FedAvg",
    "FederatedRun",
    "GossipLearner",
    "Krum",
    "NumpyTrainer",
    "Params",
    "PrivacyAccountant",
    "PrivacyBudget",
    "QuantizedUpdate",
    "RoundCoordinator",
    "RoundDevice",
    "RoundEnded",
    "RoundJoined",
    "RoundParams",
    "RoundResult",
    "SecAggCoordinator",
    "SecAggDevice",
    "SecAggRun",
    "SendAnonymously",
    "SoftmaxRegression",
    "SparseUpdate",
    "TopK",
    "TorchTrainer",
    "Trainer",
    "TrainingConfig",
    "TrainingCore",
    "TrainingFace",
    "TrainingLayerConfig",
    "TrimmedMean",
    "aggregator_by_name",
    "check_data",
    "check_params",
    "clip_update",
    "consistent",
    "default_neighbours",
    "dequantize",
    "distributed_noise_std",
    "dp_fedavg",
    "enrol_topic",
    "gaussian_noise",
    "graph_neighbours",
    "is_sampled",
    "load_digits_split",
    "model_hash",
    "plot_demo",
    "quantize",
    "quantize_for_sum",
    "reconstruct",
    "round_id",
    "run_demo",
    "run_federated",
    "share_from_bytes",
    "share_to_bytes",
    "simulate_secagg",
    "split",
    "split_dirichlet",
    "split_iid",
    "split_shards",
    "training_model_name",
    "training_service",
]
