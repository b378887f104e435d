"""Release tools: offline programs over traffic logs, behind ``guardedllm simulate`` and
``guardedllm compare``.

Pure apart from reading the log files and the release record, and from the worker processes
``replay`` starts for a large log: ``TrafficReader`` streams the logs a line at a time;
``Simulation`` replays request shapes through deployments' tokenizers, prices and limits, and
``replay`` runs one over files (on every CPU for a large log); ``Comparison`` computes per-arm
statistics of recorded outcomes with intervals and verdicts; ``simulation_gates`` and
``comparison_gates`` check limits; the ``*_document`` functions build the stable JSON
documents. Importing this package reads no file.
"""

from __future__ import annotations

from guardedllm.release._compare import (
    ArmResult,
    Comparison,
    ComparisonResult,
    MetricComparison,
    compare_arms,
)
from guardedllm.release._documents import (
    RELEASE_FORMAT,
    comparison_document,
    load_release,
    release_document,
    simulation_document,
)
from guardedllm.release._gates import Gate, comparison_gates, simulation_gates
from guardedllm.release._replay import available_cpus, replay
from guardedllm.release._simulate import (
    DeploymentResult,
    Simulation,
    SimulationPart,
    SimulationResult,
)
from guardedllm.release._stats import (
    Difference,
    Distribution,
    mean_difference,
    nearest_rank,
    percentile_difference,
    rate_difference,
    verdict,
    wilson,
)
from guardedllm.release._traffic import (
    CallRecord,
    Piece,
    ShadowRecord,
    Skips,
    TrafficReader,
    TrafficRequest,
    split_file,
)

__all__ = [
    "RELEASE_FORMAT",
    "ArmResult",
    "CallRecord",
    "Comparison",
    "ComparisonResult",
    "DeploymentResult",
    "Difference",
    "Distribution",
    "Gate",
    "MetricComparison",
    "Piece",
    "ShadowRecord",
    "Simulation",
    "SimulationPart",
    "SimulationResult",
    "Skips",
    "TrafficReader",
    "TrafficRequest",
    "available_cpus",
    "compare_arms",
    "comparison_document",
    "comparison_gates",
    "load_release",
    "mean_difference",
    "nearest_rank",
    "percentile_difference",
    "rate_difference",
    "release_document",
    "replay",
    "simulation_document",
    "simulation_gates",
    "split_file",
    "verdict",
    "wilson",
]
