"""3DGS's adaptive density control (Kerbl et al. 2023) for Gaussian fields, as a strategy.

While refining (`REFINE_START` to `REFINE_STOP` of the run, every `REFINE_EVERY` of it), the
norm of each Gaussian's positional gradient is averaged over the steps that reached it. At each
refinement the top `GROW_FRACTION` of the Gaussians by that average are densified, up to
`MAX_GAUSSIANS`: those larger than `SPLIT_SCALE` of the box diagonal are split in two (children
drawn from the parent's distribution, 1.6 times narrower), the others cloned; Gaussians fainter
than `PRUNE_OPACITY` or larger than `PRUNE_SCALE` of the diagonal, or whose centre left the box,
are pruned. At `RESET_AT` every opacity is lowered to at most `RESET_OPACITY` (their Adam moments
zeroed), so that the Gaussians the views do not need fade and get pruned. Structural changes go
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
from fields import Densifiable, Field, field_class
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

    def make_field(self, trainer: Trainer, overrides: dict[str, Any]) -> Field | None:
        """The configured field with its Gaussians in the visual hull of the training masks
        (`data.hull`) where the scene has masks; uniformly in the box otherwise."""
        field = field_class(self.config.field).from_scene(trainer.scene, trainer.gpu, **overrides)
        points = visual_hull_points(trainer.scene, field.num_gaussians, generator=torch.Generator().manual_seed(self.config.seed))
        if points is None:
            self.placement = f"{field.num_gaussians:,} Gaussians placed uniformly in the box"
            return field
        with torch.no_grad():
            field.keep_rows(torch.arange(len(points)))
            field.means.copy_(points)
            spacing = _nearest_neighbour_distance(points)
            field.set_scales(torch.arange(len(points)), torch.full((len(points), 3), spacing))
        self.placement = (f"{field.num_gaussians:,} Gaussians placed in the visual hull of the training masks, "
                          f"standard deviation {spacing:.3g} (their median nearest-neighbour distance)")  # fmt: skip
        return field

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
        if self.resets_done < len(RESET_AT) and progress >= RESET_AT[self.resets_done]:
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


def _nearest_neighbour_distance(points: torch.Tensor, probes: int = 2000) -> float:
    """The median distance from `probes` of `points [P, 3]` to their nearest other point: the
    Gaussians start that wide, so that each point of the hull is within the cutoff of a few of
    them (3DGS starts at the mean distance to the 3 nearest, and rasterizes; a marched sample
    pays for every Gaussian that reaches it)."""
    chosen = points[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:probes]]
    distances = torch.cdist(chosen, points)
    distances[distances == 0] = float("inf")
    return float(distances.min(dim=1).values.median())
