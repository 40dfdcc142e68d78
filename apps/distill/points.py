"""Distillation at points (Progressive Volume Distillation's point losses, Fang et al. 2022):
`point_loss` is the point stage of `tensorfields distill` (`training.strategies.Distillation`)
and, alone (`distill_at_points`), how a freshly placed tri-vector field starts from the coarse
VM it replaces instead of from random values."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fields import Decoded, Field
from render import OccupancyGrid

__all__ = ["distill_at_points", "point_loss", "shares_features", "occupied_point_sampler", "EMPTY_THICKNESS", "SOLID_THICKNESS"]


def occupied_point_sampler(grid: OccupancyGrid, generator: torch.Generator | None = None) -> Callable[[int], torch.Tensor]:
    """A function `n -> [n, 3]` of world points drawn uniformly from the occupied cells of `grid`."""
    cells = grid.occupied.flatten().nonzero().squeeze(1)
    if cells.numel() == 0:
        raise ValueError("cannot sample points from an empty occupancy grid")

    def sample(num_points: int) -> torch.Tensor:
        pick = torch.randint(cells.numel(), (num_points,), generator=generator, device=cells.device)
        return grid.cell_centers(cells[pick], jitter=True, generator=generator)

    return sample


#: optical thickness per step where distillation stops caring: the occupancy grid's opacity
#: threshold (1e-3) below, and opaque (e^-5 of the light left) above
EMPTY_THICKNESS, SOLID_THICKNESS = 1e-3, 5.0


def _log_thickness(thickness: torch.Tensor) -> torch.Tensor:
    return torch.log(thickness.clamp(max=SOLID_THICKNESS) + EMPTY_THICKNESS)


def point_loss(teacher: Field, student: Field, x: torch.Tensor, step_size: float, features: bool) -> torch.Tensor:
    """PVD's point-level loss of `student` against `teacher` at world points `x [N, 3]`.

    The log of the optical thickness of one render step, sigma * `step_size`, between the
    occupancy threshold (below: empty, differences do not matter) and solid (above: opaque either
    way) (a log, so a faint student gets the same pull as a dense one; opacity itself would give
    it vanishing gradients), plus the colour: with `features` (both fields `Decoded`, the
    student's decoder a copy of the teacher's, so the features mean the same colours) the
    appearance features `[N, appearance_dim]` they feed to their decoders; otherwise the radiance
    in a random direction per point, weighted by the teacher's opacity of a step there (the
    colour of empty space is never seen).
    """
    if features:
        with torch.no_grad():
            target_thickness = _log_thickness(teacher.density(x) * step_size)
            target_colour = teacher.appearance_features(x)
        thickness, colour, weight = _log_thickness(student.density(x) * step_size), student.appearance_features(x), 1.0
    else:
        d = F.normalize(torch.randn(x.shape, device=x.device), dim=-1)
        with torch.no_grad():
            sigma, target_colour = teacher.query(x, d)
            target_thickness = _log_thickness(sigma * step_size)
            weight = (1.0 - torch.exp(-sigma * step_size))[:, None]
        student_sigma, colour = student.query(x, d)
        thickness = _log_thickness(student_sigma * step_size)
    return torch.mean((thickness - target_thickness) ** 2) + torch.mean(weight * (colour - target_colour) ** 2)


def shares_features(teacher: Field, student: Field) -> bool:
    """Whether `point_loss` can compare the two fields' appearance features: both `Decoded`, with
    decoders of the same structure (state shapes) and features of the same width."""
    if not (isinstance(teacher, Decoded) and isinstance(student, Decoded)):
        return False
    mine, theirs = student.decoder.state_dict(), teacher.decoder.state_dict()
    return mine.keys() == theirs.keys() and all(mine[k].shape == theirs[k].shape for k in mine)


def distill_at_points(
    teacher: Field,
    student: Field,
    sample: Callable[[int], torch.Tensor],
    steps: int,
    step_size: float,
    batch_size: int = 4096,
    lr_scale: float = 2.0,
) -> float:
    """Fit `student` to `teacher` with `point_loss` alone (features when both are `Decoded`: copy
    the teacher's decoder into the student first).

    Args:
        sample: `n -> [n, 3]` world points (e.g. `occupied_point_sampler`).
        steps: Adam steps of `batch_size` points, at `lr_scale` times the student's base rates
            (for VM-like fields 0.04 on the factors; the decoder gets no gradient here).
    Returns:
        the loss of the last step.
    """
    features = isinstance(teacher, Decoded) and isinstance(student, Decoded)
    groups = [{**group, "lr": group["lr"] * lr_scale} for group in student.param_groups()]
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99))
    loss = torch.zeros(())
    for _ in range(steps):
        loss = point_loss(teacher, student, sample(batch_size), step_size, features)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()
