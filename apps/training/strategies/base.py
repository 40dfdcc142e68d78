"""The hooks every training strategy has. The training loop calls them and knows no method."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from data import Cameras, PixelBatch
    from fields import Field
    from render import RenderOutput

    from ..trainer import Trainer

__all__ = ["Strategy"]


class Strategy:
    """One training method's lifecycle (TensoRF's schedule, Strivec's placement, TRaIn, ...).

    Every hook has a default that does nothing, so a strategy implements only what its method
    needs. Hooks that report return lines for the run log ("events"). `state_dict` is saved
    in the checkpoint under `name`, and `load_state_dict` restores it on `--resume`.
    """

    #: key of this strategy's state in the checkpoint
    name: str = ""

    # --- the field ------------------------------------------------------------------------
    def field_overrides(self, trainer: Trainer) -> dict[str, Any]:
        """Constructor arguments this method sets on the field it trains (e.g. the grid size)."""
        return {}

    def make_field(self, trainer: Trainer, overrides: dict[str, Any]) -> Field | None:
        """The field to start from, if this method starts from something other than the
        configured field's `from_scene` (e.g. a coarse stage); None otherwise."""
        return None

    # --- the loop -------------------------------------------------------------------------
    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        """The trainer is built (a new run, or `resumed` from a checkpoint)."""
        return []

    def before_step(self, trainer: Trainer) -> None:
        """Before the batch of step `trainer.state.iteration + 1` is drawn and rendered."""

    def cameras(self, trainer: Trainer, cameras: Cameras) -> Cameras:
        """The cameras training rays are cast from, given `cameras` as the strategies before this
        one left them (the scene's to begin with); the run records the result as its training
        cameras. Pose refinement returns them corrected, differentiably."""
        return cameras

    def targets(
        self, trainer: Trainer, batch: PixelBatch, rgb: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the batch's rendered colours are compared with, `rgb [B, 3]`, and the rays' loss
        weights `[B]` (None: all 1), given them as the strategies before this one left them
        (the batch's pixels and None to begin with)."""
        return rgb, weights

    def loss(self, trainer: Trainer, batch: PixelBatch, output: RenderOutput) -> torch.Tensor | None:
        """A loss term this method adds to the step's, or None, given the step's `batch` and its
        render `output` (rendered with `trainer.batch_settings`); it may render rays of its own."""
        return None

    def after_step(self, trainer: Trainer, loss: float) -> list[str]:
        """After optimizer step `trainer.state.iteration`, whose batch colour loss was `loss`."""
        return []

    def finish(self, trainer: Trainer) -> list[str]:
        """The run has reached its end."""
        return []

    # --- what other strategies may do -----------------------------------------------------
    def allows(self, trainer: Trainer, action: str) -> bool:
        """Whether `action` may happen now: "update_grid" (occupancy update), "carve" (shrink
        the box, prune empty parts)."""
        return True

    def step_scale(self, trainer: Trainer) -> float:
        """Factor on the ray-marching step of training batches."""
        return 1.0

    def lr_scale(self, trainer: Trainer) -> float:
        """Factor on every parameter group's base learning rate."""
        return 1.0

    # --- events of other strategies -------------------------------------------------------
    def on_field_replaced(self, trainer: Trainer) -> None:
        """`trainer.field` is a new field (not a resized one)."""

    def after_shrink(self, trainer: Trainer) -> list[str]:
        """The field's box was shrunk to the occupied region (the grid is the one it was cut from)."""
        return []

    def before_upsample(self, trainer: Trainer, milestones: int) -> list[str]:
        """The field is about to be upsampled; `milestones` upsample milestones are now passed."""
        return []

    # --- persistence ----------------------------------------------------------------------
    def records(self, trainer: Trainer) -> dict[str, dict[str, Any]]:
        """JSON files (name -> content) the run folder keeps beside the checkpoint, written with it."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """This method's state: JSON values, or tensors (saved as checkpoint tensors)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`. Checkpoints before strategies kept one flat dict of every
        method's counters; strategies read their own keys from it."""
