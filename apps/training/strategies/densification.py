"""3DGS's adaptive density control (Kerbl et al. 2023) for Gaussian fields, as a strategy.

While refining (`REFINE_START` to `REFINE_STOP` of the run, every `REFINE_EVERY` of it), the
norm of each Gaussian's positional gradient is averaged over the steps that reached it. At each
refinement the top `GROW_FRACTION` of the Gaussians by that average are densified, up to
`MAX_GAUSSIANS`: those larger than `SPLIT_SCALE` of the box diagonal are split in two (children
drawn from the parent's distribution, 1.6 times narrower), the others cloned; Gaussians fainter
than `PRUNE_OPACITY` or larger than `PRUNE_SCALE` of the diagonal, or whose centre left the box,
are pruned. At `RESET_AT` every opacity is lowered to at most `RESET_OPACITY` (their Adam moments
zeroed), so that the Gaussians the views do not need fade and get pruned; not for Gaussians that
start from a trained field or a splat file (`--init-from`, `--init-splats`). Structural changes go
through `Trainer.restructure`, so the survivors keep their optimizer state (clones copy it).

3DGS ranks the Gaussians by the gradient of their projected 2D position against a fixed
threshold (0.0002); this field renders by marching, so the 3D gradient is used, and a fraction
of the Gaussians rather than a threshold, which keeps growth in proportion on any scene.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from data import Scene
from data.hull import visual_hull_points
from fields import Densifiable, Field
from fields.gaussians import GaussianField, read_splats
from fields.gaussians.field import quaternion_to_rotation

from ..config import TrainConfig
from .base import Strategy

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = ["GaussianDensification", "GaussiansLost", "MAX_GAUSSIANS"]

#: the refinement window and period, as fractions of the run
REFINE_START, REFINE_STOP, REFINE_EVERY = 0.04, 0.6, 0.04
#: the fraction of the Gaussians that gradients reached densified at each refinement
GROW_FRACTION = 0.15
#: the most Gaussians (45,000 at rank 16 hold 1.2 M parameters, TensoRF-VM's size on lego)
MAX_GAUSSIANS = 45_000
#: split above, clone below this largest standard deviation, as a fraction of the box diagonal (3DGS's percent_dense)
SPLIT_SCALE = 0.01
#: a split's children are this much narrower than their parent (3DGS)
SPLIT_SHRINK = 1.6
#: prune below this opacity, or above this largest standard deviation (fraction of the box diagonal)
PRUNE_OPACITY, PRUNE_SCALE = 0.005, 0.1
#: opacity resets, as fractions of the run, and the opacity they lower every Gaussian to
RESET_AT, RESET_OPACITY = (0.3,), 0.01


class GaussiansLost(RuntimeError):
    """Densification would leave no Gaussian (the field has emptied); the run stops, and its
    last checkpoint stays as it was."""


class GaussianDensification(Strategy):
    """Clone, split, prune and reset Gaussians while training (see the module docstring)."""

    name = "densification"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        self.config = config
        self.placement = ""
        self.refines_done = 0
        self.resets_done = 0
        self.grad_sum: torch.Tensor | None = None
        self.grad_count: torch.Tensor | None = None
        # Gaussians that start from a trained field or a splat file carry no floaters of a random start to fade
        self.reset_at = () if config.init_from is not None or config.init_splats is not None else RESET_AT

    def make_field(self, trainer: Trainer, overrides: dict[str, Any]) -> Field | None:
        """The starting Gaussians, in order of preference: the `--init-splats` file's; fitted to
        the `--init-from` run (`distill.gaussians`); at the scene's SfM points with their
        colours; in the visual hull of the training masks (`data.hull`); uniformly in the box.
        The first three keep the preset's count at most (a random subset of the points)."""
        options = GaussianField.scene_kwargs(trainer.scene, trainer.gpu, **overrides)
        if self.config.init_splats is not None:
            return self._from_splats(trainer, options)
        if self.config.init_from is not None:
            return self._fitted(trainer, options)
        field = GaussianField(trainer.scene.aabb.float(), **options)
        generator = torch.Generator().manual_seed(self.config.seed)
        points, colours = self._sfm_points(trainer, field.num_gaussians, generator)
        if points is not None:
            width = field.place(points, colours, opacity=field.init_opacity)
            self.placement = f"{field.num_gaussians:,} Gaussians placed at the scene's SfM points, standard deviation {width:.3g}"
            return field
        points = visual_hull_points(trainer.scene, field.num_gaussians, generator=generator)
        if points is None:
            self.placement = f"{field.num_gaussians:,} Gaussians placed uniformly in the box"
            return field
        width = field.place(points)
        self.placement = (f"{field.num_gaussians:,} Gaussians placed in the visual hull of the training masks, "
                          f"standard deviation {width:.3g} (their median nearest-neighbour distance)")  # fmt: skip
        return field

    def _from_splats(self, trainer: Trainer, options: dict[str, Any]) -> GaussianField:
        """The `--init-splats` file's Gaussians in the scene's box (those outside are pruned at
        the first refinement); ValueError when the run's space is not the world's or none lies in the box."""
        path = self.config.init_splats
        if trainer.contraction is not None or trainer.ndc is not None:
            space = "NDC" if trainer.ndc is not None else "contracted"
            raise ValueError(f"--init-splats {path}: this scene trains in {space} space, where world-space splats do not apply "
                             "(--contraction off keeps a bounded scene in its box)")  # fmt: skip
        splats = read_splats(path)
        box = trainer.scene.aabb.float()
        inside = int(((splats.means >= box[0]) & (splats.means <= box[1])).all(dim=-1).sum())
        if inside == 0:
            raise ValueError(f"{path}: none of its {len(splats):,} Gaussians lies in the scene's box {box.tolist()}: "
                             "the file is in another frame than the scene")  # fmt: skip
        keep = {k: v for k, v in options.items() if k not in ("num_gaussians", "colour_components", "sh_degree", "resolution")}
        field = GaussianField.from_splats(splats, aabb=box, resolution=GaussianField.index_resolution(box), **keep)
        self.placement = f"{len(splats):,} Gaussians from {path} ({inside:,} in the scene's box), SH degree {splats.sh_degree}"
        return field

    def _fitted(self, trainer: Trainer, options: dict[str, Any]) -> GaussianField:
        """Gaussians fitted to the `--init-from` run (`distill.gaussians.fit_gaussians`) at the
        training cameras."""
        from ...distill.gaussians import fit_gaussians
        from ...runs import load_checkpoint

        teacher = load_checkpoint(self.config.init_from, trainer.device).model
        keep = {k: v for k, v in options.items() if k not in ("num_gaussians", "resolution")}
        generator = torch.Generator().manual_seed(self.config.seed)
        try:
            field = fit_gaussians(teacher, trainer.cameras[trainer.scene.split("train")], options["num_gaussians"],
                                  generator=generator, **keep)  # fmt: skip
        except ValueError as error:
            raise ValueError(f"--init-from {self.config.init_from}: {error}") from None
        self.placement = (f"{field.num_gaussians:,} Gaussians fitted to the '{teacher.field.name}' field of {self.config.init_from} "
                          "at its surfaces")  # fmt: skip
        return field

    @staticmethod
    def _sfm_points(trainer: Trainer, count: int, generator: torch.Generator) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Up to `count` of the scene's SfM points that lie in the field's box, where the field
        takes them (contracted for unbounded scenes), and their colours in [0, 1]; None without points."""
        scene = trainer.scene
        points = getattr(scene, "points", None)
        if points is None or trainer.ndc is not None:
            return None, None
        colours = getattr(scene, "point_colours", None)
        colours = torch.full_like(points, 0.5) if colours is None else colours.float() / 255.0
        if trainer.contraction is not None:
            points = trainer.contraction.field_points(points.float())
        box = scene.aabb.float()
        inside = ((points >= box[0]) & (points <= box[1])).all(dim=-1)
        points, colours = points[inside], colours[inside]
        if points.shape[0] < 2:
            return None, None
        chosen = torch.randperm(points.shape[0], generator=generator)[:count]
        return points[chosen], colours[chosen]

    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        return [] if resumed or not self.placement else [self.placement]

    def after_step(self, trainer: Trainer, loss: float) -> list[str]:
        field = trainer.field
        if not isinstance(field, Densifiable):
            return []
        self._accumulate(field)
        events = []
        progress = trainer.progress
        due = REFINE_START + self.refines_done * REFINE_EVERY
        if progress >= due and due <= REFINE_STOP:
            while REFINE_START + self.refines_done * REFINE_EVERY <= min(progress, REFINE_STOP):
                self.refines_done += 1
            events.append(self._refine(trainer))
        if self.resets_done < len(self.reset_at) and progress >= self.reset_at[self.resets_done]:
            self.resets_done += 1
            events.append(self._reset_opacities(trainer))
        return events

    def _accumulate(self, field: Any) -> None:
        grad = field.means.grad
        if grad is None:
            return
        if self.grad_sum is None or self.grad_sum.shape[0] != grad.shape[0]:
            self.grad_sum = torch.zeros(grad.shape[0], device=grad.device)
            self.grad_count = torch.zeros(grad.shape[0], device=grad.device)
        norm = grad.norm(dim=-1)
        self.grad_sum += norm
        self.grad_count += (norm > 0).float()

    @torch.no_grad()
    def _refine(self, trainer: Trainer) -> str:
        field = trainer.field
        count = field.num_gaussians
        diagonal = float((field.aabb[1] - field.aabb[0]).norm())
        scales, opacities = field.scales(), field.opacities()
        largest = scales.max(dim=-1).values
        if self.grad_sum is None or self.grad_sum.shape[0] != count:
            mean_grad, reached = torch.zeros(count, device=scales.device), torch.zeros(count, dtype=torch.bool, device=scales.device)
        else:
            mean_grad, reached = self.grad_sum / self.grad_count.clamp(min=1), self.grad_count > 0
        inside = ((field.means >= field.aabb[0]) & (field.means <= field.aabb[1])).all(dim=-1)
        prune = (opacities < PRUNE_OPACITY) | (largest > PRUNE_SCALE * diagonal) | ~inside
        pruned = int(prune.sum())
        candidates = reached & ~prune
        grow_count = max(0, min(int(GROW_FRACTION * int(candidates.sum())), MAX_GAUSSIANS - count + pruned))
        grow = torch.topk(torch.where(candidates, mean_grad, -1.0), grow_count).indices if grow_count else mean_grad.new_zeros(0).long()
        large = largest[grow] > SPLIT_SCALE * diagonal
        split, clone = grow[large], grow[~large]
        prune[split] = True  # a split parent is replaced by its two children
        kept = torch.nonzero(~prune).flatten()
        rows = torch.cat([kept, clone, split, split])
        if rows.numel() == 0:
            raise GaussiansLost(f"densification at iteration {trainer.state.iteration} would prune all {count} Gaussians "
                                "(every one is transparent or oversized): the field has emptied")  # fmt: skip
        parent_scales = scales[split].repeat(2, 1)
        parent_rotations = quaternion_to_rotation(field.quats[split]).repeat(2, 1, 1)
        trainer.restructure(lambda f: f.keep_rows(rows))
        field = trainer.field
        children = torch.arange(rows.numel() - 2 * split.numel(), rows.numel(), device=rows.device)
        offsets = torch.einsum("nij,nj->ni", parent_rotations, parent_scales * torch.randn_like(parent_scales))
        field.means[children] += offsets
        field.set_scales(children, parent_scales / SPLIT_SHRINK)
        self.grad_sum = self.grad_count = None
        return (f"densified: {clone.numel()} cloned, {split.numel()} split, {pruned} pruned: "
                f"{count} -> {field.num_gaussians} Gaussians")  # fmt: skip

    @torch.no_grad()
    def _reset_opacities(self, trainer: Trainer) -> str:
        field = trainer.field
        field.opacity_logits.clamp_(max=math.log(RESET_OPACITY / (1.0 - RESET_OPACITY)))
        for moment in trainer.optimizer.state.get(field.opacity_logits, {}).values():
            if moment.shape == field.opacity_logits.shape:
                moment.zero_()
        return f"opacities reset to at most {RESET_OPACITY}"

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"refines_done": self.refines_done, "resets_done": self.resets_done}
        if self.grad_sum is not None and self.grad_count is not None:
            state.update(grad_sum=self.grad_sum, grad_count=self.grad_count)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.refines_done = int(state.get("refines_done", 0))
        self.resets_done = int(state.get("resets_done", 0))
        self.grad_sum, self.grad_count = state.get("grad_sum"), state.get("grad_count")
