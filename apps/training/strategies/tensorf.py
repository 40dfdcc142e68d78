"""TensoRF's training schedule as a strategy: occupancy-grid updates, box shrinks, grid
upsampling, learning-rate decay with a reset at each upsample, and TensoRF's regularizer weights.

Milestones are fractions of the run (`training.schedule.Schedule`), so the schedule fits
`--iters` and `--budget` runs alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from data import Cameras, Scene
from fields import Regularized, Upsampleable
from fields.tensorf import resolution_for_voxels
from render import NDC, OccupancyGrid, camera_rays

from ..config import TrainConfig, uses_contraction
from ..schedule import Schedule
from .base import Strategy

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["TensoRFSchedule", "default_grid", "ndc_ray_box", "regularization_weights"]


#: the final grid of a contracted or forward-facing scene trained on the CPU for `BUDGET_GRID_SECONDS` (see `default_grid`)
BUDGET_GRID, BUDGET_GRID_SECONDS = 128, 120.0


def default_grid(scene: Scene, spans_space: bool = False, budget: float | None = None, gpu: bool = False) -> tuple[int, int]:
    """Grid resolutions that suit the image size: about 1.3 voxels per pixel of the longer side
    at the end (TensoRF's 300^3 for 800x800 images), starting at 43% of that (TensoRF's 128).

    A contracted scene's grid spans all of space, and a forward-facing scene's all of NDC space
    (every ray crosses the whole depth), so the image size asks for more voxels and samples than
    a CPU budget can train: with `spans_space`, a `budget`-second CPU run ends at the voxel count
    that grows linearly with the budget from `BUDGET_GRID`^3 at `BUDGET_GRID_SECONDS` (each step's
    cost grows with the voxel count). On the sculpture's 1604x1201 photos the image size asked
    for 300^3: 382 iterations in 300 s; 128^3 made 652 and scored the same on held-out views, and
    its training views 1.5 dB better."""
    final = int(min(300, max(64, round(1.28 * max(scene.width, scene.height) / 8) * 8)))
    if spans_space and budget is not None and not gpu:
        final = max(64, min(final, round(BUDGET_GRID * (budget / BUDGET_GRID_SECONDS) ** (1 / 3))))
    return max(32, round(final * 128 / 300)), final


def regularization_weights(ndc: bool, shrunk: bool) -> dict[str, float]:
    """TensoRF: L1 8e-5 then 4e-5 after the shrink on bounded scenes; TV 1.0 on forward-facing ones."""
    if ndc:
        return {"l1": 0.0, "tv_density": 1.0, "tv_appearance": 1.0}
    return {"l1": 4e-5 if shrunk else 8e-5, "tv_density": 0.0, "tv_appearance": 0.0}


#: margin of the forward-facing box around the training rays, as a fraction of its extent
#: (held-out views lie between the training ones, but not exactly inside their rays)
RAY_BOX_MARGIN = 0.05


def ndc_ray_box(cameras: Cameras, views: torch.Tensor, ndc: NDC) -> torch.Tensor:
    """The box `[2, 3]` (NDC) that the rays of cameras `views` pass through, widened in x and y by
    `RAY_BOX_MARGIN`; z spans the whole [-1, 1]. NDC maps rays to segments and an image to a
    quadrilateral at each depth, so the rays of the image corners bound all of them."""
    corners_x = torch.tensor([0.5, cameras.width - 0.5]).repeat_interleave(2).repeat(len(views)).to(cameras.c2w.device)
    corners_y = torch.tensor([0.5, cameras.height - 0.5]).repeat(2 * len(views)).to(cameras.c2w.device)
    rays = camera_rays(cameras, views.to(cameras.c2w.device).repeat_interleave(4), corners_x, corners_y, ndc)
    ends = torch.cat([rays.origins, rays.origins + rays.directions * rays.far[:, None]])
    low, high = ends.min(0).values, ends.max(0).values
    margin = RAY_BOX_MARGIN * (high - low)
    low, high = low - margin, high + margin
    low[2], high[2] = -1.0, 1.0
    return torch.stack([low, high]).float()


def _rounded(box: torch.Tensor) -> list[float]:
    return [round(v, 3) for v in box.flatten().tolist()]


class TensoRFSchedule(Strategy):
    """TensoRF's schedule. Every `occupancy_every` iterations the occupancy grid is updated (every
    cell while the geometry forms, then a random quarter, as nerfacc); at each milestone, and
    when another strategy asks (`Trainer.request_shrink`), the box is shrunk to the occupied
    region; at upsample milestones the field is upsampled to the schedule's voxel count and the
    learning rate is reset. Fields that cannot be upsampled get the grid updates and the decay."""

    name = "tensorf"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        spans_space = uses_contraction(config, scene) or scene.ndc
        grid_init, grid_final = default_grid(scene, spans_space, config.budget, device.startswith("cuda"))
        self.config = config
        self.schedule = Schedule(grid_init=config.grid_init or grid_init, grid_final=config.grid_final or grid_final)
        self.upsamples_done = 0
        self.shrinks_done = 0
        self.shrunk = False
        self.last_lr_reset = 0.0

    def field_overrides(self, trainer: Trainer) -> dict[str, Any]:
        return {"resolution": resolution_for_voxels(self.schedule.grid_init**3, trainer.scene.aabb.float())}

    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        self._set_regularization(trainer)
        if resumed or trainer.ndc is None or not isinstance(trainer.field, Upsampleable):
            return []
        box = ndc_ray_box(trainer.cameras, trainer.scene.split("train"), trainer.ndc)
        target = torch.stack([torch.maximum(box[0], trainer.field.aabb[0]), torch.minimum(box[1], trainer.field.aabb[1])])
        trainer.restructure(lambda field: field.shrink(target))
        self._new_grid(trainer)
        return [f"forward-facing: box fitted to the training rays, {_rounded(trainer.field.aabb)}, kept for the run"]

    def on_field_replaced(self, trainer: Trainer) -> None:
        self._set_regularization(trainer)

    def lr_scale(self, trainer: Trainer) -> float:
        return self.schedule.lr_scale(trainer.progress, self.last_lr_reset)

    def after_step(self, trainer: Trainer, loss: float) -> list[str]:
        config, iteration = self.config, trainer.state.iteration
        if iteration >= config.occupancy_warmup and iteration % config.occupancy_every == 0 and trainer.allows("update_grid"):
            trainer.update_grid(fraction=1.0 if iteration < 16 * config.occupancy_every else 0.25)
        shrink_requested = trainer.take_shrink_request()
        if not isinstance(trainer.field, Upsampleable):
            return []
        events = []
        shrink_due = self._passed(trainer, self.shrinks_done, gated=False) and iteration >= 2 * config.occupancy_warmup
        upsample_due = self._passed(trainer, self.upsamples_done, gated=True)
        if (shrink_due or upsample_due or shrink_requested) and trainer.allows("carve"):
            events.append(self._shrink(trainer))
            while self._passed(trainer, self.shrinks_done, gated=False):
                self.shrinks_done += 1
        if upsample_due:
            while self._passed(trainer, self.upsamples_done, gated=True):
                self.upsamples_done += 1
            events += trainer.broadcast("before_upsample", self.upsamples_done)
            events.append(self._upsample(trainer))
        return events

    def _passed(self, trainer: Trainer, done: int, gated: bool) -> bool:
        """Whether milestone number `done` has been passed. Gated (upsampling), a budget run also
        waits for the iteration a `Schedule.min_iterations`-long run would be at, so a short
        budget does not upsample a field that has seen only a few dozen batches; shrinking,
        exact and cheap, is not gated."""
        if done >= len(self.schedule.upsample_at):
            return False
        at = self.schedule.upsample_at[done]
        if gated and self.config.budget is not None and trainer.state.iteration < at * self.schedule.min_iterations:
            return False
        return trainer.progress >= at

    def _shrink(self, trainer: Trainer) -> str:
        """Shrink the box to the occupied region of a freshly updated grid; the new grid inherits
        the old one's running density. A forward-facing scene keeps the box of its training rays
        (`on_start`): every pixel sees a surface somewhere in it, and the occupancy of a field
        still cloudy at the edges that few views see cut those edges off for good (black
        wedges along the image borders). An unbounded scene's field keeps all of contracted space."""
        trainer.update_grid()
        if trainer.ndc is not None:
            return "box kept: a forward-facing scene keeps the box of its training rays"
        if trainer.model.settings.contraction is not None:
            return "box kept: an unbounded scene's field spans all of contracted space"
        box = trainer.grid.occupied_box()
        self.shrunk = True
        self._set_regularization(trainer)
        if box is None:
            return "shrink skipped: occupancy grid is empty"
        before = trainer.field.aabb.clone()
        target = torch.stack([torch.maximum(box[0], before[0]), torch.minimum(box[1], before[1])])
        trainer.restructure(lambda field: field.shrink(target))
        notes = "".join(f"; {note}" for note in trainer.broadcast("after_shrink"))
        if torch.equal(trainer.field.aabb, before):
            return "box unchanged: the occupied region fills it" + notes
        self._new_grid(trainer)
        return f"box shrunk to {_rounded(trainer.field.aabb)}, resolution {trainer.field.resolution}" + notes

    def _new_grid(self, trainer: Trainer) -> None:
        """An occupancy grid over the field's (new) box, inheriting the old grid's running density."""
        grid = OccupancyGrid(trainer.field.aabb, self.config.occupancy_resolution).to(trainer.device)
        grid.inherit(trainer.grid)
        trainer.model.grid = grid
        trainer.update_grid(step_size=trainer.step_size())

    def _upsample(self, trainer: Trainer) -> str:
        """Upsample to the voxel size of the last milestone passed (`upsamples_done` of them).

        Voxel counts are those of the scene's full box: after a shrink the same voxel size takes
        fewer voxels, so shrinking saves memory and empty-space steps without changing the
        sampling density the schedule asks for.
        """
        field, scene_box = trainer.field, trainer.scene.aabb
        box_fraction = float((field.aabb[1] - field.aabb[0]).prod() / (scene_box[1] - scene_box[0]).prod())
        voxels = self.schedule.voxel_counts()[self.upsamples_done - 1] * box_fraction
        resolution = resolution_for_voxels(voxels, field.aabb)
        # TensoRF restarts Adam here, with the learning-rate reset; carrying the moments through the
        # resampling (scaled to the finer grid or not) trained worse: 27.2 against 27.6 dB on lego
        # at 1/16 size after 250 iterations (4 and 5 runs), 26.1 dB unscaled
        trainer.restructure(lambda f: f.upsample(resolution), keep_state=False)
        self.last_lr_reset = trainer.progress
        return f"upsampled to {resolution}"

    def _set_regularization(self, trainer: Trainer) -> None:
        if isinstance(trainer.field, Regularized):
            trainer.field.reg_weights.update(regularization_weights(ndc=trainer.scene.ndc, shrunk=self.shrunk))

    def state_dict(self) -> dict[str, Any]:
        return {"upsamples_done": self.upsamples_done, "shrinks_done": self.shrinks_done, "shrunk": self.shrunk, "last_lr_reset": self.last_lr_reset}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.upsamples_done = int(state.get("upsamples_done", 0))
        self.shrinks_done = int(state.get("shrinks_done", 0))
        self.shrunk = bool(state.get("shrunk", False))
        self.last_lr_reset = float(state.get("last_lr_reset", 0.0))
