"""Strivec's lifecycle as a strategy: a coarse VM first, the tri-vector tensors placed where its
occupancy grid is occupied (and distilled from it), a settling period, then pruning.

At the first upsample milestone the configured `Placeable` field (trivec) is built from the
coarse VM's occupancy grid and the VM is distilled into it (its decoder copied, density and
appearance features fitted at points of the occupied cells, `distill.distill_at_points`), so
training goes on from the VM's image instead of a blank one. Until the second upsample the
placed field is faint everywhere, so the grid stays the coarse VM's (it fades within
`FADE_UPDATES` updates of each cell afterwards) and the box is not shrunk; from the third
milestone on every shrink also prunes the tensors the grid finds empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from data import Scene
from fields import Field, Placeable, VMField, field_class

from ...distill import distill_at_points, occupied_point_sampler
from ..config import TrainConfig
from .base import Strategy

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["StrivecPlacement", "SETTLE_UPSAMPLES", "PLACEMENT_DISTILL_STEPS", "FADE_UPDATES"]

#: the placed field's grid stays the coarse VM's, and the box waits, until this many upsamples
SETTLE_UPSAMPLES = 2
#: Adam steps that fit a freshly placed field to the coarse VM before training goes on
PLACEMENT_DISTILL_STEPS = 100
#: when a field's density is replaced, the old running density fades within this many updates of each cell
FADE_UPDATES = 8


class StrivecPlacement(Strategy):
    """Coarse VM -> placement + distillation -> settling -> pruning, for a `Placeable` field."""

    name = "strivec"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        self.config = config
        self.field_cls = field_class(config.field)
        self.placed = False
        self.upsamples_done = 0

    def _field_kwargs(self, trainer: Trainer) -> dict[str, Any]:
        return self.field_cls.scene_kwargs(
            trainer.scene, trainer.gpu, decoder=self.config.decoder, appearance_codes=trainer.appearance_codes
        )

    def make_field(self, trainer: Trainer, overrides: dict[str, Any]) -> Field | None:
        """The coarse VM, with the decoder the placed field will take over."""
        kwargs = self._field_kwargs(trainer)
        head = {key: kwargs[key] for key in ("decoder", "decoder_pe", "appearance_codes") if key in kwargs}
        return VMField.from_scene(trainer.scene, trainer.gpu, resolution=overrides.get("resolution"), **head)

    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        if self.placed:
            return []
        return [f"coarse stage: a VM whose occupancy grid places the {self.config.field} field at the first upsample"]

    def _settling(self) -> bool:
        return self.placed and self.upsamples_done < SETTLE_UPSAMPLES

    def allows(self, trainer: Trainer, action: str) -> bool:
        return not self._settling()

    def before_upsample(self, trainer: Trainer, milestones: int) -> list[str]:
        events = [] if self.placed else [self._place(trainer)]
        self.upsamples_done = milestones
        return events

    def _place(self, trainer: Trainer) -> str:
        """End of the coarse stage: build the field where the grid is occupied, take over the
        VM's decoder and appearance codes (and their optimizer state), fade the grid, distill the
        VM into the field."""
        coarse, grid = trainer.field, trainer.grid
        placed = self.field_cls.from_occupancy(grid.occupied, grid.aabb, **self._field_kwargs(trainer)).to(trainer.device)
        placed.decoder.load_state_dict(coarse.decoder.state_dict())
        if placed.codes is not None:
            placed.codes.load_state_dict(coarse.codes.state_dict())
        trainer.replace_field(placed, keep=lambda name: name.startswith(("decoder.", "codes.")))
        self.placed = True
        grid.fade(trainer.step_size(), self.config.occupancy_threshold, FADE_UPDATES)
        trainer.broadcast("on_field_replaced")
        sampler = occupied_point_sampler(grid, trainer.generator)
        loss = distill_at_points(coarse, placed, sampler, PLACEMENT_DISTILL_STEPS, trainer.step_size())
        counts = placed.config().get("num_tensors")
        return (
            f"coarse stage done: {self.config.field} placed from the occupancy grid ({counts} tensors per scale), "
            f"distilled from the coarse field (loss {loss:.2g})"
        )

    def after_shrink(self, trainer: Trainer) -> list[str]:
        """Drop the placed field's parts the occupancy grid finds empty."""
        if not self.placed or not isinstance(trainer.field, Placeable):
            return []
        grid = trainer.grid
        removed = trainer.restructure(lambda field: field.prune(grid.occupied, grid.aabb))
        return [f"{removed} empty tensors pruned"] if removed else []

    def state_dict(self) -> dict[str, Any]:
        return {"placed": self.placed, "upsamples_done": self.upsamples_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.placed = bool(state.get("placed", not state.get("coarse", False)))
        self.upsamples_done = int(state.get("upsamples_done", 0))
