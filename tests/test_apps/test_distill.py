"""Distillation at points: a freshly placed tri-vector field fitted to a VM teacher (the opacity
of a render step, and the appearance features that the copied decoder turns into colours)."""

from __future__ import annotations

import pytest
import torch
from conftest import TRIVEC_GRID as GRID
from conftest import UNIT_BOX as BOX
from conftest import cell_centers
from conftest import make_trivec_field as make_field
from conftest import trivec_blob as blob

from apps.distill import distill_at_points, occupied_point_sampler
from fields import VMField
from render import OccupancyGrid

STEP = 0.05  # render step the opacities are taken at


def teacher_vm() -> VMField:
    """A VM with large random factors: density and colour vary visibly over BOX."""
    return VMField(BOX, [8, 8, 8], density_components=4, appearance_components=6, appearance_dim=12, init_scale=0.6, density_shift=0.0, distance_scale=4.0)


def blob_grid() -> OccupancyGrid:
    grid = OccupancyGrid(BOX, GRID)
    grid.occupied.copy_(blob())
    return grid


def test_sampler_draws_only_from_occupied_cells() -> None:
    grid = blob_grid()
    x = occupied_point_sampler(grid, torch.Generator().manual_seed(0))(5000)
    ijk = ((x - BOX[0]) / (BOX[1] - BOX[0]) * GRID).long().clamp(0, GRID - 1)
    assert x.shape == (5000, 3) and bool(grid.occupied[ijk[:, 0], ijk[:, 1], ijk[:, 2]].all())
    grid.occupied.zero_()
    with pytest.raises(ValueError, match="empty occupancy grid"):
        occupied_point_sampler(grid)


def test_distilled_field_renders_close_to_its_teacher() -> None:
    teacher, grid = teacher_vm(), blob_grid()
    student = make_field(lengths=[9, 6], appearance_components=[12, 8], density_shift=0.0, distance_scale=4.0)
    student.decoder.load_state_dict(teacher.decoder.state_dict())
    cells = cell_centers()[blob()]
    x = cells + (torch.rand_like(cells) - 0.5) * (2.0 / GRID)

    def errors() -> tuple[float, float]:
        with torch.no_grad():
            alpha = [1.0 - torch.exp(-f.density(x) * STEP) for f in (teacher, student)]
            features = [f.appearance_features(x) for f in (teacher, student)]  # the same decoder turns them into colour
        return float((alpha[0] - alpha[1]).abs().mean()), float((features[0] - features[1]).abs().mean())

    alpha_before, features_before = errors()
    loss = distill_at_points(teacher, student, occupied_point_sampler(grid, torch.Generator().manual_seed(0)), 150, STEP, batch_size=2048)
    alpha_after, features_after = errors()
    assert loss < 0.05
    assert alpha_after < 0.3 * alpha_before and features_after < 0.3 * features_before, (alpha_before, alpha_after, features_before, features_after)
