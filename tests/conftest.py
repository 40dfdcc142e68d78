"""Shared fixtures, skip markers and test helpers (the only place they are defined)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from data.synthetic import write_sphere_scene

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
LEGO = SHARED_DATA / "lego"
FERN = SHARED_DATA / "fern"

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
requires_lego = pytest.mark.skipif(not LEGO.is_dir(), reason=f"reference scene missing: {LEGO}")
requires_fern = pytest.mark.skipif(not FERN.is_dir(), reason=f"reference scene missing: {FERN}")

#: the box the marching and compositing tests march through
MARCH_BOX = torch.tensor([[-1.0, -0.5, -1.5], [1.0, 1.5, 0.5]])


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def sphere_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a small synthetic transforms.json scene (see `write_sphere_scene`)."""
    return write_sphere_scene(tmp_path_factory.mktemp("sphere_scene"))


def brute_force_neighbors(
    points: torch.Tensor, centers: torch.Tensor, half_size: float, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Strivec's covering-tensor search by testing every tensor: of the cubes (`centers [T, 3]`,
    `half_size`) that cover a point (|x - c|_inf <= h), the `k` nearest (ties: lower index),
    inverse-distance weights (distance clamped at 1e-6 h) and local coordinates (x - c) / h.

    Returns index `[N, k]` int64 (-1 when empty), weights `[N, k]`, local `[N, k, 3]`, as
    `cuda_ext.trivec_neighbors` does for points inside its lookup grid.
    """
    n = points.shape[0]
    index = torch.full((n, k), -1, dtype=torch.int64)
    weights = torch.zeros(n, k, dtype=points.dtype)
    local = torch.zeros(n, k, 3, dtype=points.dtype)
    for p in range(n):
        diff = points[p] - centers  # [T, 3], in the points' dtype (the kernels' rounding)
        covered = (diff.abs() <= half_size).all(dim=-1).nonzero()[:, 0].tolist()
        dx, dy, dz = diff.unbind(-1)
        distance = torch.sqrt(dx * dx + dy * dy + dz * dz)
        nearest = sorted(covered, key=lambda t: (distance[t].item(), t))[:k]
        if not nearest:
            continue
        inverse = 1.0 / distance[nearest].double().clamp(min=1e-6 * half_size)
        index[p, : len(nearest)] = torch.tensor(nearest)
        weights[p, : len(nearest)] = (inverse / inverse.sum()).to(points.dtype)
        local[p, : len(nearest)] = diff[nearest] / half_size
    return index, weights, local


def assert_native_matches_reference(field: Any, x: torch.Tensor, d: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    """`field.query(x, d)` and its gradients w.r.t. the factors agree between the native kernels
    and the pure-torch reference (TENSORFIELDS_REFERENCE=1)."""
    sigma, rgb = field.query(x, d)
    (sigma.sum() + rgb.sum()).backward()
    native_grads = [p.grad.clone() for p in field.factor_parameters()]
    field.zero_grad()
    monkeypatch.setenv("TENSORFIELDS_REFERENCE", "1")
    sigma_ref, rgb_ref = field.query(x, d)
    (sigma_ref.sum() + rgb_ref.sum()).backward()
    torch.testing.assert_close(sigma, sigma_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rgb, rgb_ref, rtol=1e-5, atol=1e-5)
    for have, param in zip(native_grads, field.factor_parameters()):
        torch.testing.assert_close(have, param.grad, rtol=1e-5, atol=1e-4)


def make_march_rays(count: int, seed: int, device: str, inside: int = 0, axis_parallel: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from outside the box towards it; the first `inside` start inside it, the next
    `axis_parallel` run along a coordinate axis."""
    g = torch.Generator().manual_seed(seed)
    centre = MARCH_BOX.mean(0)
    origins = centre + 3.0 * F.normalize(torch.randn(count, 3, generator=g), dim=-1)
    directions = F.normalize(centre + 0.8 * torch.randn(count, 3, generator=g) - origins, dim=-1)
    origins[:inside] = centre + 0.5 * torch.rand(inside, 3, generator=g) - 0.25
    axes = torch.eye(3)[torch.randint(0, 3, (axis_parallel,), generator=g)] * torch.sign(torch.randn(axis_parallel, 1, generator=g))
    origins[inside : inside + axis_parallel] = centre + 0.6 * torch.rand(axis_parallel, 3, generator=g) - 0.3 - 2.5 * axes
    directions[inside : inside + axis_parallel] = axes
    return origins.to(device), directions.to(device)


@pytest.fixture
def value_check_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of `cuda_ext`'s value-reading check helpers (`_checks.VALUE_CHECKS`) called by
    the ops during a test, in order; the helpers still run. Empty with TENSORFIELDS_DEBUG off."""
    from cuda_ext import factor_ops, ops, trivec_ops
    from cuda_ext._checks import VALUE_CHECKS

    calls: list[str] = []

    def recording(helper: Any, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            calls.append(name)
            helper(*args, **kwargs)

        return record

    for module in (ops, factor_ops, trivec_ops):
        for name in VALUE_CHECKS:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, recording(getattr(module, name), name))
    return calls


@pytest.fixture
def cuda_sync_count() -> Any:
    """count(fn) -> how many synchronizing CUDA operations fn() performed (the warnings of
    torch.cuda.set_sync_debug_mode("warn"), which is restored afterwards)."""
    import warnings

    def count(fn: Any) -> int:
        torch.cuda.synchronize()
        previous = torch.cuda.get_sync_debug_mode()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode(previous)
        return sum("called a synchronizing" in str(w.message) for w in caught)

    return count


# --- small fields, cameras and runs shared by the field and app tests --------------------------

#: the box of the small grid-field tests, and their grid points per axis
GRID_FIELD_AABB = torch.tensor([[-1.0, -1.5, -0.5], [1.0, 1.5, 0.5]])
GRID_FIELD_RESOLUTION = [9, 13, 5]
#: the box of the checkpoint, mesh and tri-vector tests, and the occupancy cells per axis over it
UNIT_BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
TRIVEC_GRID = 16


def make_grid_field(kind: str, decoder: str = "mlp", **kwargs: Any) -> Any:
    """A small VM or CP field with large random factors (so density and colour vary visibly)."""
    from fields import CPField, VMField

    kwargs = {"density_shift": 0.0, "distance_scale": 1.0, **kwargs}
    if decoder == "sh":
        kwargs["appearance_dim"] = 27
    if kind == "vm":
        return VMField(GRID_FIELD_AABB, GRID_FIELD_RESOLUTION, density_components=[2, 3, 4], appearance_components=[3, 2, 5], init_scale=0.5, decoder=decoder, **kwargs)
    return CPField(GRID_FIELD_AABB, GRID_FIELD_RESOLUTION, density_components=4, appearance_components=6, init_scale=0.8, decoder=decoder, **kwargs)


def points_inside(n: int, aabb: torch.Tensor = GRID_FIELD_AABB) -> torch.Tensor:
    """`n` uniform points `[n, 3]` in `aabb`."""
    return torch.rand(n, 3) * (aabb[1] - aabb[0]) + aabb[0]


def unit_dirs(n: int) -> torch.Tensor:
    """`n` random unit directions `[n, 3]`."""
    return F.normalize(torch.randn(n, 3), dim=-1)


def cell_centers(resolution: int = TRIVEC_GRID, box: torch.Tensor = UNIT_BOX) -> torch.Tensor:
    """Centres `[R, R, R, 3]` of the cells of an occupancy grid over `box`."""
    ijk = torch.stack(torch.meshgrid(*[torch.arange(resolution)] * 3, indexing="ij"), dim=-1)
    return box[0] + (ijk + 0.5) / resolution * (box[1] - box[0])


def trivec_blob() -> torch.Tensor:
    """`[TRIVEC_GRID]^3` occupancy: a ball off-centre and a slab on the +x face (cubes there reach out of the box)."""
    c = cell_centers()
    return ((c - torch.tensor([-0.2, 0.1, 0.0])).norm(dim=-1) < 0.45) | ((c[..., 0] > 0.85) & (c[..., 1].abs() < 0.2) & (c[..., 2].abs() < 0.2))


def make_trivec_field(occupied: torch.Tensor | None = None, **kwargs: Any) -> Any:
    """A small two-scale tri-vector field with large random lines, placed from `occupied` (default `trivec_blob()`)."""
    from fields import TriVecField

    kwargs = {"scales": 2, "lengths": [5, 4], "density_components": [3, 2], "appearance_components": [4, 3], "appearance_dim": 12,
              "init_scale": 0.8, "density_shift": 0.0, "distance_scale": 1.0, **kwargs}  # fmt: skip
    return TriVecField.from_occupancy(trivec_blob() if occupied is None else occupied, UNIT_BOX, **kwargs)


def small_cameras() -> Any:
    """Two 16x12 cameras looking at the origin."""
    from data.cameras import Cameras
    from render.paths import look_at

    positions = torch.tensor([[2.5, 0.5, 1.0], [-1.0, 2.2, -1.5]])
    return Cameras(c2w=look_at(positions, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0])), fx=14.0, fy=14.0, cx=8.0, cy=6.0, width=16, height=12)


def trained_model(steps: int = 3) -> tuple[Any, torch.optim.Adam]:
    """A small VM model after a few Adam steps (upsampled, shrunk; its grid partly empty), and the optimizer."""
    from fields import VMField
    from render import Model, OccupancyGrid, RenderSettings

    field = VMField(UNIT_BOX, [12, 10, 8], density_components=[2, 3, 2], appearance_components=4, init_scale=0.5, density_shift=-2.0, distance_scale=5.0)
    field.upsample([14, 12, 10])  # config must follow resampling
    field.shrink(torch.tensor([[-0.9, -0.8, -1.0], [0.9, 1.0, 0.7]]))
    optimizer = torch.optim.Adam(field.param_groups(), betas=(0.9, 0.99))
    x = torch.rand(256, 3) * 1.6 - 0.8
    d = F.normalize(torch.randn(256, 3), dim=-1)
    for _ in range(steps):
        optimizer.zero_grad()
        sigma, rgb = field.query(x, d)
        (sigma.mean() + (rgb - 0.3).pow(2).mean()).backward()
        optimizer.step()
    grid = OccupancyGrid(field.aabb, 8)
    grid.update(field.density, step_size=0.05, alpha_threshold=0.2, generator=torch.Generator().manual_seed(0))
    assert 0 < grid.occupancy_fraction() < 1
    settings = RenderSettings(step_size=0.05, near=0.1, far=8.0, background=[0.0, 0.2, 1.0])
    return Model(field, grid, settings), optimizer


def coded_model(codes: int = 3) -> Any:
    """A small VM model whose field has `codes` appearance codes, drawn at random (so each image
    looks visibly different), its grid updated from the density."""
    from fields import VMField
    from render import Model, OccupancyGrid, RenderSettings

    field = VMField(UNIT_BOX, [12, 10, 8], density_components=2, appearance_components=4, init_scale=0.5, density_shift=-2.0, distance_scale=5.0, appearance_codes=codes)
    with torch.no_grad():
        field.codes.weight.normal_(0.0, 2.0)
    grid = OccupancyGrid(field.aabb, 8)
    grid.update(field.density, step_size=0.05, alpha_threshold=0.01, generator=torch.Generator().manual_seed(0))
    return Model(field, grid, RenderSettings(step_size=0.05, near=0.1, far=8.0))


def small_config(data: Path, out: Path, **overrides: Any) -> Any:
    """A short training run on a small scene (40 iterations, small grids)."""
    from apps.training import TrainConfig

    values = dict(data=str(data), out=str(out), iters=40, batch_size=512, grid_init=24, grid_final=32, occupancy_resolution=32)
    values.update(overrides)
    return TrainConfig(**values)
