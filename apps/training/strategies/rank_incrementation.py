"""SlimmeRF's Tensorial Rank Incrementation (TRaIn): grow the active rank while training.

Training starts at rank 1 (one density and three appearance components per group, see
`fields.slimming`) and adds one rank whenever the batch loss changes abruptly between
consecutive steps, |L_{t-1} - L_t| / L_t > upsilon, at least `eta` steps after the previous
increment, until the full rank is reached. SlimmeRF uses upsilon 0.4, eta 0 on synthetic scenes
and upsilon 0.1, eta 100 on forward-facing ones.

`TRaIn` is the strategy: the low ranks are smooth (a few separable products) and over-cover
empty space, so until the full rank is in, training rays march at `LOW_RANK_STEP_FACTOR` times
the step; at the full rank the step returns to normal, the low ranks' occupancy fades and the
box is shrunk again. A run that ends short of the full rank is truncated to the rank it reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from data import Scene
from fields import Placeable, Slimmable
from fields.slimming import TRAIN_EPSILON

from ..config import TrainConfig
from .base import Strategy
from .strivec import FADE_UPDATES

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["RankIncrementation", "TRaIn", "LOW_RANK_STEP_FACTOR"]

#: TRaIn's low ranks march about twice the samples per ray; until the full rank is in, rays step this much farther
LOW_RANK_STEP_FACTOR = 2.0


@dataclass(frozen=True)
class RankIncrementation:
    """When to add a rank: relative loss change above `upsilon`, more than `eta` steps apart."""

    upsilon: float = 0.4
    eta: int = 0

    @classmethod
    def for_scene(cls, forward_facing: bool, upsilon: float | None = None, eta: int | None = None) -> "RankIncrementation":
        """SlimmeRF's settings for the kind of scene; explicit `upsilon` / `eta` override them."""
        default = cls(0.1, 100) if forward_facing else cls(0.4, 0)
        return cls(default.upsilon if upsilon is None else upsilon, default.eta if eta is None else eta)

    def __post_init__(self) -> None:
        if self.upsilon <= 0:
            raise ValueError(f"--upsilon must be positive, got {self.upsilon}")
        if self.eta < 0:
            raise ValueError(f"--eta must be at least 0, got {self.eta}")

    def relative_change(self, previous_loss: float, loss: float) -> float:
        """|previous - loss| / loss, the quantity compared with upsilon."""
        return abs(previous_loss - loss) / max(loss, 1e-12)

    def due(self, previous_loss: float | None, loss: float, iteration: int, last_increment: int) -> bool:
        """Whether step `iteration` (whose batch loss is `loss`) adds a rank."""
        if previous_loss is None or iteration - last_increment <= self.eta:
            return False
        return self.relative_change(previous_loss, loss) > self.upsilon


class TRaIn(Strategy):
    """SlimmeRF's Tensorial Rank Incrementation for a `Slimmable` field (`--slimmable`).

    A new run starts at rank 1 with the components above it scaled by SlimmeRF's training
    epsilon; a field that first trains a coarse stage (Strivec) starts TRaIn when the configured
    field replaces it. While placed local tensors are below the full rank the box is not shrunk:
    their low ranks stay faint where the scene is thin, and a shrink would cut those parts off.
    """

    name = "train"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        self.config = config
        self.thresholds = RankIncrementation.for_scene(scene.ndc, config.upsilon, config.eta)
        self.active = False
        self.previous_loss: float | None = None
        self.last_rank_increment = 0

    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        if trainer.field.name != self.config.field:
            return []  # a coarse stage: TRaIn starts with the configured field (`on_field_replaced`)
        self._start(trainer, fresh=not resumed)
        return []

    def on_field_replaced(self, trainer: Trainer) -> None:
        self._start(trainer, fresh=True)

    def _start(self, trainer: Trainer, fresh: bool) -> None:
        field = trainer.field
        if not isinstance(field, Slimmable):
            raise ValueError(f"--slimmable needs a rank-ordered field (vm, cp or trivec), not '{self.config.field}'")
        if fresh:
            field.set_active_rank(1)
        field.rank_epsilon = TRAIN_EPSILON
        self.active = True

    def _below_full_rank(self, trainer: Trainer) -> bool:
        return self.active and trainer.field.active_rank < trainer.field.ranks

    def step_scale(self, trainer: Trainer) -> float:
        return LOW_RANK_STEP_FACTOR if self._below_full_rank(trainer) else 1.0

    def allows(self, trainer: Trainer, action: str) -> bool:
        return not (action == "carve" and isinstance(trainer.field, Placeable) and self._below_full_rank(trainer))

    def after_step(self, trainer: Trainer, loss: float) -> list[str]:
        """Add a rank when the batch loss changed abruptly; at the full rank march at the normal
        step again, let the low ranks' occupancy fade and ask for a box shrink."""
        previous, self.previous_loss = self.previous_loss, loss
        iteration = trainer.state.iteration
        if not self._below_full_rank(trainer) or not self.thresholds.due(previous, loss, iteration, self.last_rank_increment):
            return []
        field = trainer.field
        field.set_active_rank(field.active_rank + 1)
        self.last_rank_increment = iteration
        events = [f"rank {field.active_rank} of {field.ranks} (TRaIn: batch loss changed {self.thresholds.relative_change(previous, loss):.0%})"]
        if field.active_rank == field.ranks:
            trainer.update_step_size()
            trainer.grid.fade(trainer.model.settings.step_size, self.config.occupancy_threshold, FADE_UPDATES)
            trainer.request_shrink()
        return events

    def finish(self, trainer: Trainer) -> list[str]:
        """A run that stopped short of the full rank is truncated to the rank it reached (the
        components above it never trained)."""
        if not self._below_full_rank(trainer):
            return []
        rank, ranks = trainer.field.active_rank, trainer.field.ranks
        trainer.restructure(lambda field: field.slim(rank))
        self.active = False
        return [f"TRaIn reached rank {rank} of {ranks}: the field is truncated to it"]

    def state_dict(self) -> dict[str, Any]:
        return {"previous_loss": self.previous_loss, "last_rank_increment": self.last_rank_increment}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous_loss = state.get("previous_loss")
        self.last_rank_increment = int(state.get("last_rank_increment", 0))
