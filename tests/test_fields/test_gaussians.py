"""The Gaussian splat field: its lookup lists, opacity and colour conventions, slimming, and
3DGS `.ply` files in and out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import unit_dirs
from plyfile import PlyData, PlyElement

from cuda_ext import reference
from fields.decoders import sh_basis
from fields.gaussians import GaussianField, SplatFileError, Splats, read_splats, write_splats
from fields.gaussians.field import quaternion_to_rotation
from fields.gaussians.index import box_occupancy, build_cell_lists, cell_grid
from fields.gaussians.ply import ply_property_names

BOX = torch.tensor([[-1.0, -0.8, -0.6], [1.0, 0.8, 0.6]])


def random_splats(n: int, degree: int = 3, scale: float = 0.1) -> Splats:
    return Splats(
        means=torch.rand(n, 3) * (BOX[1] - BOX[0]) * 0.8 + BOX[0] * 0.8,
        scales=scale * torch.exp(0.3 * torch.randn(n, 3)),
        quats=F.normalize(torch.randn(n, 4), dim=-1),
        opacities=torch.rand(n) * 0.9 + 0.05,
        sh=0.3 * torch.randn(n, (degree + 1) ** 2, 3),
    )


def brute_force_density(field: GaussianField, x: torch.Tensor) -> torch.Tensor:
    """sum_i sigma_i exp(-q_i / 2) over every Gaussian (q_i <= cutoff^2), no lookup grid."""
    scales = field.scales()
    rotations = quaternion_to_rotation(field.quats)
    inverse = rotations @ torch.diag_embed(scales.pow(-2)) @ rotations.transpose(1, 2)
    offset = x[:, None, :] - field.means[None]
    q = torch.einsum("sni,nij,snj->sn", offset, inverse, offset)
    weight = field.peak_densities(scales)[None] * torch.exp(-0.5 * q)
    return torch.where(q <= field.cutoff**2, weight, torch.zeros_like(weight)).sum(1)


def test_lookup_lists_hold_every_gaussian_that_reaches_a_point() -> None:
    field = GaussianField.from_splats(random_splats(60), aabb=BOX, resolution=[10, 8, 6]).double()
    x = torch.rand(3000, 3, dtype=torch.float64) * (BOX[1] - BOX[0]) + BOX[0]
    with torch.no_grad():
        torch.testing.assert_close(field.density(x), brute_force_density(field, x), rtol=1e-10, atol=1e-10)


def test_cell_lists_are_sorted_and_cover_the_box_of_each_gaussian() -> None:
    grid = cell_grid(BOX, [4, 4, 4])
    assert grid.resolution == (4, 4, 3) and math.isclose(grid.cell_size, 0.5)
    means = torch.tensor([[0.1, 0.1, 0.1], [5.0, 5.0, 5.0]])  # the second is outside the grid
    lists = build_cell_lists(means, torch.full((2, 3), 0.3), grid)
    counts = lists.start[1:] - lists.start[:-1]
    # x in [-0.2, 0.4] from -1: cells 1, 2; y from -0.8: cells 1, 2; z from -0.6: cells 0, 1, 2
    assert int(counts.sum()) == 12 and set(lists.gaussians.tolist()) == {0}
    occupied = torch.nonzero(counts).flatten().tolist()
    rows = [(i * 4 + j) * 3 + k for i in (1, 2) for j in (1, 2) for k in (0, 1, 2)]
    assert occupied == sorted(rows)


def test_box_occupancy_marks_exactly_the_cells_the_boxes_touch() -> None:
    means, half = torch.rand(40, 3) * 2.4 - 1.2, torch.rand(40, 3) * 0.3  # some reach past the box
    resolution = [16, 12, 9]
    occupied = box_occupancy(means, half, BOX, resolution)
    size = (BOX[1] - BOX[0]) / torch.tensor(resolution)
    ijk = torch.stack(torch.meshgrid(*[torch.arange(r) for r in resolution], indexing="ij"), dim=-1).float()
    low, high = BOX[0] + ijk * size, BOX[0] + (ijk + 1) * size  # cell (i, j, l) spans [low, high)
    touched = (((means - half)[:, None, None, None] < high) & ((means + half)[:, None, None, None] >= low)).all(-1).any(0)
    assert torch.equal(occupied, touched) and 0 < occupied.float().mean() < 1


def test_occupied_cells_hold_every_sample_the_marcher_would_keep() -> None:
    field = GaussianField.from_splats(random_splats(30, scale=0.05), aabb=BOX, resolution=[10, 8, 6])
    step, threshold, resolution = 0.01, 1e-3, [20, 16, 12]
    occupied = field.occupied_cells(field.aabb, resolution, step, threshold)
    x = torch.rand(200_000, 3) * (BOX[1] - BOX[0]) + BOX[0]
    with torch.no_grad():
        kept = 1.0 - torch.exp(-field.density(x) * step) > threshold
    cell = torch.floor((x - BOX[0]) / (BOX[1] - BOX[0]) * torch.tensor(resolution)).long()
    assert bool(occupied[cell[kept, 0], cell[kept, 1], cell[kept, 2]].all())
    assert occupied.float().mean() < 0.5  # and the empty space is skipped


def test_a_ray_through_an_isotropic_gaussian_is_stopped_with_its_opacity() -> None:
    splats = Splats(torch.zeros(1, 3), torch.full((1, 3), 0.1), torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([0.7]), torch.zeros(1, 1, 3))
    field = GaussianField.from_splats(splats, aabb=torch.tensor([[-1.0] * 3, [1.0] * 3]), resolution=[20] * 3, min_scale=1e-4)
    t = torch.linspace(-0.9, 0.9, 20001)
    x = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], dim=-1)
    with torch.no_grad():
        optical_depth = torch.trapezoid(field.density(x), t)
    within_cutoff = math.erf(3.0 / math.sqrt(2.0))  # the 3-sigma cut drops 0.27% of the optical depth
    assert math.isclose(float(optical_depth), -math.log(1.0 - 0.7) * within_cutoff, rel_tol=1e-4)


def test_colour_is_the_sh_coefficients_in_the_view_direction() -> None:
    splats = random_splats(1, degree=2, scale=0.2)
    splats.means.zero_()
    field = GaussianField.from_splats(splats, aabb=BOX, resolution=[8, 8, 8])
    d = unit_dirs(50)
    with torch.no_grad():
        rgb = field.radiance(torch.zeros(50, 3), d)
    expected = (0.5 + torch.einsum("nk,kc->nc", sh_basis(d, 2), splats.sh[0])).clamp(0, 1)
    torch.testing.assert_close(rgb, expected, rtol=1e-5, atol=1e-5)


def test_splats_round_trip_through_the_field_exactly() -> None:
    splats = random_splats(40)
    field = GaussianField.from_splats(splats, aabb=BOX, resolution=[8, 8, 8], min_scale=1e-3)
    back = field.to_splats()
    for name in ("means", "scales", "quats", "opacities", "sh"):
        torch.testing.assert_close(getattr(back, name), getattr(splats, name), rtol=1e-4, atol=1e-5)
    rebuilt = GaussianField.from_splats(back, aabb=BOX, resolution=[8, 8, 8], min_scale=1e-3)
    x, d = torch.rand(500, 3) * (BOX[1] - BOX[0]) + BOX[0], unit_dirs(500)
    with torch.no_grad():
        for have, want in zip(rebuilt.query(x, d), field.query(x, d)):
            torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-4)


def test_standard_deviations_below_the_floor_are_raised_to_it() -> None:
    splats = random_splats(5)
    splats.scales[0] = torch.tensor([1e-6, 0.1, 0.1])
    field = GaussianField.from_splats(splats, aabb=BOX, resolution=[8, 8, 8], min_scale=0.01)
    scales = field.scales().detach()
    assert math.isclose(float(scales[0, 0]), 0.01, rel_tol=1e-3)
    torch.testing.assert_close(scales[1:], splats.scales[1:], rtol=1e-4, atol=1e-6)


def test_an_imported_field_slimmed_to_rank_three_keeps_the_dc_colours() -> None:
    splats = random_splats(20)
    field = GaussianField.from_splats(splats, aabb=BOX, resolution=[8, 8, 8])
    assert field.ranks == 48
    slim = field.slim(3)
    torch.testing.assert_close(slim.sh_coefficients().detach()[:, 0], splats.sh[:, 0], rtol=1e-5, atol=1e-6)
    x = splats.means[:1].expand(30, 3).contiguous()
    with torch.no_grad():
        rgb = slim.radiance(x, unit_dirs(30))
    torch.testing.assert_close(rgb, rgb[:1].expand(30, 3))  # no view dependence left


def test_ply_has_the_3dgs_layout_in_order(tmp_path: Path) -> None:
    splats = random_splats(7)
    path = tmp_path / "scene.ply"
    write_splats(path, splats)
    vertex = PlyData.read(str(path))["vertex"]
    names = [prop.name for prop in vertex.properties]
    assert names == ply_property_names(16) and len(names) == 62
    assert all(prop.val_dtype in ("f4", "float32", "float") for prop in vertex.properties)
    assert np.allclose(vertex["f_dc_1"], splats.sh[:, 0, 1].numpy())
    assert np.allclose(vertex["f_rest_0"], splats.sh[:, 1, 0].numpy())  # channel-major: red's first...
    assert np.allclose(vertex["f_rest_15"], splats.sh[:, 1, 1].numpy())  # ... then green's
    assert np.allclose(vertex["scale_2"], np.log(splats.scales[:, 2].numpy()), atol=1e-6)
    assert np.allclose(1 / (1 + np.exp(-vertex["opacity"])), splats.opacities.numpy(), atol=1e-6)
    assert np.allclose(vertex["rot_0"], splats.quats[:, 0].numpy())
    assert np.allclose(vertex["nx"], 0.0)
    back = read_splats(path)
    for name in ("means", "scales", "quats", "opacities", "sh"):
        torch.testing.assert_close(getattr(back, name), getattr(splats, name), rtol=1e-5, atol=1e-6)


def test_ply_of_a_lower_sh_degree_reads(tmp_path: Path) -> None:
    splats = random_splats(4, degree=1)
    write_splats(tmp_path / "d1.ply", splats)
    back = read_splats(tmp_path / "d1.ply")
    assert back.sh_degree == 1 and back.sh.shape == (4, 4, 3)


def _write_vertices(path: Path, names: list[str], count: int = 3, fill: float = 0.5) -> None:
    vertices = np.full(count, fill, dtype=[(name, "f4") for name in names])
    PlyData([PlyElement.describe(vertices, "vertex")]).write(str(path))


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("mesh", "missing the 3DGS properties .*looks like a mesh"),
        ("no_rot", "missing the 3DGS properties rot_0, rot_1, rot_2, rot_3"),
        ("sh_count", "has 10 f_rest properties"),
        ("nan", "non-finite opacity"),
        ("text", "not a readable .ply"),
        ("empty", "holds no Gaussians"),
        ("absent", "no such file"),
    ],
)
def test_bad_ply_files_are_named_with_their_problem(tmp_path: Path, case: str, message: str) -> None:
    path = tmp_path / f"{case}.ply"
    full = ply_property_names(16)
    if case == "mesh":
        _write_vertices(path, ["x", "y", "z", "red", "green", "blue"])
    elif case == "no_rot":
        _write_vertices(path, [n for n in full if not n.startswith("rot")])
    elif case == "sh_count":
        _write_vertices(path, [n for n in full if not n.startswith("f_rest")] + [f"f_rest_{i}" for i in range(10)])
    elif case == "nan":
        names = ply_property_names(1)
        vertices = np.full(3, 0.5, dtype=[(n, "f4") for n in names])
        vertices["opacity"][1] = np.nan
        PlyData([PlyElement.describe(vertices, "vertex")]).write(str(path))
    elif case == "text":
        path.write_text("this is not a ply file\n")
    elif case == "empty":
        _write_vertices(path, full, count=0)
    with pytest.raises(SplatFileError, match=message) as caught:
        read_splats(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_training_gradients_reach_every_parameter() -> None:
    field = GaussianField(BOX, [8, 8, 8], num_gaussians=50)
    x = field.means.detach()[:20] + 0.01
    sigma, rgb = field.query(x, unit_dirs(20))
    (sigma.sum() + rgb.sum()).backward()
    for name, parameter in field.named_parameters():
        assert parameter.grad is not None and bool(parameter.grad.abs().sum() > 0), name
