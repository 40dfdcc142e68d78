"""Training methods as strategies with uniform hooks (`base.Strategy`), one file each:
TensoRF's schedule (`tensorf.py`), Strivec's placement (`strivec.py`), SlimmeRF's TRaIn
(`rank_incrementation.py`), joint pose refinement (`poses.py`), 3DGS's densification
(`densification.py`), Progressive Volume Distillation from a teacher run (`distillation.py`).
`strategies_for` picks the ones a
run needs, in hook order."""

from __future__ import annotations

from data import Scene
from fields import Densifiable, Placeable, field_class

from ..config import TrainConfig, refines_poses, supervises_depth
from .base import Strategy
from .densification import GaussianDensification, GaussiansLost
from .depth import DepthSupervision
from .distillation import Distillation
from .poses import PoseRefinement
from .rank_incrementation import LOW_RANK_STEP_FACTOR, RankIncrementation, TRaIn
from .strivec import FADE_UPDATES, PLACEMENT_DISTILL_STEPS, SETTLE_UPSAMPLES, StrivecPlacement
from .tensorf import TensoRFSchedule, default_grid, regularization_weights

__all__ = [
    "Strategy",
    "TensoRFSchedule",
    "StrivecPlacement",
    "TRaIn",
    "RankIncrementation",
    "PoseRefinement",
    "DepthSupervision",
    "Distillation",
    "GaussianDensification",
    "GaussiansLost",
    "strategies_for",
    "default_grid",
    "regularization_weights",
    "LOW_RANK_STEP_FACTOR",
    "FADE_UPDATES",
    "PLACEMENT_DISTILL_STEPS",
    "SETTLE_UPSAMPLES",
]


def strategies_for(config: TrainConfig, scene: Scene) -> list[Strategy]:
    """The strategies of a run, in the order their hooks run: placement for `Placeable` fields,
    3DGS's densification for `Densifiable` ones, TRaIn with `--slimmable` (its rank step comes
    before the schedule's shrink), TensoRF's schedule;
    pose refinement (`refines_poses`) first, so that the field is sharp again when the schedule
    updates the occupancy grid; depth supervision (`supervises_depth`) last. A distillation
    (`config.teacher`) comes first and places a `Placeable` student itself."""
    strategies: list[Strategy] = [PoseRefinement(config, scene)] if refines_poses(config, scene) else []
    if config.teacher is not None:
        strategies.insert(0, Distillation(config, scene))
    elif issubclass(field_class(config.field), Placeable):
        strategies.append(StrivecPlacement(config, scene))
    if issubclass(field_class(config.field), Densifiable):
        strategies.append(GaussianDensification(config, scene))
    if config.slimmable:
        strategies.append(TRaIn(config, scene))
    strategies.append(TensoRFSchedule(config, scene))
    if supervises_depth(config, scene):
        strategies.append(DepthSupervision(config, scene))
    return strategies
