"""Progressive Volume Distillation ("One is All", Fang et al. 2022) as a strategy: a student of
any field learns a trained teacher run of any other from the teacher's renders alone.

The run's scene is the teacher's renders (`distill.teacher_scene`), so the training loop's
colour loss on rays is already the volume-level colour term. This strategy adds, in stages:

1. start: the student's box and occupancy grid are the teacher's (a `Placeable` student is
   placed in the teacher's occupied cells; a `Decoded` one whose decoder has the teacher's
   structure starts with a copy of it), and its render settings (background, contraction,
   near/far) are the teacher's;
2. "points": PVD's point loss (`distill.point_loss`: density as clamped log thickness, colour
   under random directions, or (3) the appearance features when the decoders are shared) at
   `POINTS_PER_STEP` points a step, drawn from the teacher's occupied cells and, a share
   `EMPTY_SHARE`, from all of the box (so the student also learns where space is empty); the
   grid keeps the teacher's cells, and the box is not carved;
4. "volume": the rays' opacity and depth against the teacher's, beside their colour.

`STAGES` is the one place that sets each stage's share of the run and its loss weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from data import Scene
from fields import Field, Placeable, Upsampleable, field_class

from ...distill.points import occupied_point_sampler, point_loss, shares_features
from ...distill.teacher import TEACHER_VIEWS, Teacher, load_teacher, load_views
from ..config import TrainConfig
from .base import Strategy

if TYPE_CHECKING:
    from data import PixelBatch
    from render import RenderOutput

    from ..trainer import Trainer

__all__ = ["Distillation", "Stage", "STAGES", "POINTS_PER_STEP", "EMPTY_SHARE"]


@dataclass(frozen=True)
class Stage:
    """A stage of the distillation: it lasts until `until` of the run, and weighs the point loss,
    the rays' opacity MSE and their depth MSE (relative to the teacher's typical depth) by
    `points`, `opacity` and `depth` against the rays' colour MSE (weight 1)."""

    name: str
    until: float
    points: float
    opacity: float
    depth: float


#: PVD's progression: points first (fast, local, where the teacher is), then whole rays. On lego
#: at 1/8 size, VM (33.5 dB) -> CP in 60 s: no points stage 29.7 dB, to 30% of the run 31.8, to
#: 60% 32.1, to 80% 31.8 (10 held-out views, 20 teacher views)
STAGES = (
    Stage("points", until=0.6, points=1.0, opacity=0.1, depth=0.0),
    Stage("volume", until=1.0, points=0.0, opacity=0.1, depth=0.05),
)
#: points of the point loss per step (a 1024-ray CPU batch marches about 30k samples)
POINTS_PER_STEP = 4096
#: the share of them drawn uniformly in the box rather than in the teacher's occupied cells
EMPTY_SHARE = 0.1


class Distillation(Strategy):
    """The student's side of `tensorfields distill` (module docstring)."""

    name = "distill"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        if config.teacher is None:
            raise ValueError("a distillation needs a teacher run folder")
        self.config = config
        self.teacher: Teacher = load_teacher(config.teacher)
        views = load_views(Path(config.out) / TEACHER_VIEWS)
        train = scene.split("train")
        if len(views.rgb) != len(train) or views.rgb.shape[1:3] != scene.images.shape[1:3]:
            raise ValueError(f"{Path(config.out) / TEACHER_VIEWS}: its views are not this run's training images; start over with --overwrite")
        self.opacity, self.depth = views.opacity, views.depth
        opaque = views.depth[views.opacity > 0.5]
        #: the teacher's typical depth, the unit of the depth loss
        self.depth_scale = float(opaque.median()) if opaque.numel() else 1.0
        self.features = False
        self.sample_occupied = None

    def stage(self, trainer: Trainer) -> Stage:
        return next((stage for stage in STAGES if trainer.progress < stage.until), STAGES[-1])

    # --- the field ------------------------------------------------------------------------
    def make_field(self, trainer: Trainer, overrides: dict[str, Any]) -> Field | None:
        """A `Placeable` student placed in the teacher's occupied cells; an `Upsampleable` one
        over the scene box (at the schedule's voxel size) cropped to the teacher's box, as the
        teacher's own grid was after its shrinks; any other over the teacher's box. Either with
        a copy of the teacher's decoder when it has the same structure. None for fields another
        strategy starts (Gaussians are fitted to the teacher, `init_from`)."""
        cls = field_class(self.config.field)
        if self.config.init_from is not None:
            return None
        kwargs = cls.scene_kwargs(trainer.scene, trainer.gpu, **overrides)
        grid = self.teacher.model.grid
        box = grid.aabb.detach().float().cpu()
        if issubclass(cls, Placeable):
            field = cls.from_occupancy(grid.occupied.cpu(), box, **kwargs)
        elif issubclass(cls, Upsampleable):
            field = cls(aabb=trainer.scene.aabb.float(), **kwargs)
            field.shrink(box)
        else:
            field = cls(aabb=box, **kwargs)
        if shares_features(self.teacher.model.field, field):
            field.decoder.load_state_dict(self.teacher.model.field.decoder.state_dict())
        return field

    # --- the loop -------------------------------------------------------------------------
    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        teacher = self.teacher
        teacher.model.to(trainer.device)
        self.opacity, self.depth = self.opacity.to(trainer.device), self.depth.to(trainer.device)
        trainer.model.settings = replace(teacher.model.settings, step_size=trainer.model.settings.step_size)
        if not resumed:
            trainer.grid.adopt(teacher.model.grid)
        self.features = shares_features(teacher.model.field, trainer.field)
        self.sample_occupied = occupied_point_sampler(teacher.model.grid, trainer.generator)
        colour = "appearance features (shared decoder)" if self.features else "radiance under random directions"
        return [
            f"distilling {teacher.model.field.name} ({teacher.model.field.num_parameters():,} parameters) from {teacher.run} "
            f"into {trainer.field.name}: {len(self.opacity)} teacher views; points stage to {STAGES[0].until:.0%} "
            f"of the run (density and {colour}), then rays (colour, opacity, depth)"
        ]

    def allows(self, trainer: Trainer, action: str) -> bool:
        """The teacher's grid stands, and the box stays, until the points stage is over."""
        return self.stage(trainer).points == 0.0

    def targets(
        self, trainer: Trainer, batch: PixelBatch, rgb: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The teacher's colours, on the batch's background (the trainer draws some batches of
        scenes on a dark background over white: the teacher's opacity says how much shows)."""
        background = trainer.batch_settings.background
        scene_background = trainer.model.settings.background
        if background == scene_background:
            return rgb, weights
        shift = torch.tensor(background, device=rgb.device) - torch.tensor(scene_background, device=rgb.device)
        opacity = self._at(self.opacity, batch)
        return rgb + (1.0 - opacity)[:, None] * shift, weights

    def loss(self, trainer: Trainer, batch: PixelBatch, output: RenderOutput) -> torch.Tensor:
        stage = self.stage(trainer)
        loss = stage.opacity * torch.mean((output.opacity - self._at(self.opacity, batch)) ** 2)
        if stage.depth:
            error = (output.depth - self._at(self.depth, batch)) / self.depth_scale
            loss = loss + stage.depth * torch.mean(error.clamp(-1.0, 1.0) ** 2)
        if stage.points:
            x = self._points(trainer)
            loss = loss + stage.points * point_loss(self.teacher.model.field, trainer.field, x, trainer.step_size(), self.features)
        return loss

    def _at(self, values: torch.Tensor, batch: PixelBatch) -> torch.Tensor:
        """`values [V, H, W]` at the batch's pixels, `[B]`."""
        return values[batch.camera_indices, batch.y.long(), batch.x.long()]

    def _points(self, trainer: Trainer) -> torch.Tensor:
        """`POINTS_PER_STEP` field-space points: from the teacher's occupied cells, and a share
        `EMPTY_SHARE` anywhere in its box."""
        grid = self.teacher.model.grid
        empty = int(POINTS_PER_STEP * EMPTY_SHARE)
        occupied = self.sample_occupied(POINTS_PER_STEP - empty)
        u = torch.rand(empty, 3, generator=trainer.generator, device=trainer.device)
        return torch.cat([occupied, grid.aabb[0] + u * (grid.aabb[1] - grid.aabb[0])])
