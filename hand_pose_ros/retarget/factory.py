"""Build a retargeter by name: what the node, the benchmark and the tests call."""
from __future__ import annotations

from hand_pose_ros.retarget.base import Retargeter

RETARGETERS = ("analytic", "optimisation")


def make_retargeter(spec, kind: str, **options) -> Retargeter:
    """kind 'analytic' or 'optimisation' (options: method='vector'|'dexpilot')."""
    kind = str(kind).lower().replace("optimization", "optimisation")
    if kind == "analytic":
        from hand_pose_ros.retarget.analytic import AnalyticRetargeter
        return AnalyticRetargeter(spec, **options)
    if kind == "optimisation":
        from hand_pose_ros.retarget.optimisation import OptimisationRetargeter
        return OptimisationRetargeter(spec, **options)
    raise ValueError(f"unknown retargeter {kind!r}; choose one of {RETARGETERS}")
