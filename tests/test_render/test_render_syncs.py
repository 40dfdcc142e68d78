"""The per-batch render path reads tensor values only where it needs a size (STYLE 16): the box
reaches the kernels from the host (`OccupancyGrid.host_aabb`, copied once per box), value checks
wait for TENSORFIELDS_DEBUG, and on CUDA the only syncs left in `render_rays` are the three size
reads its docstring lists."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import requires_cuda
from torch import nn

from cuda_ext import march_rays, status
from render.occupancy import OccupancyGrid
from render.rays import Rays
from render.renderer import RenderSettings, render_rays, render_rays_progressive

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


class BlobField(nn.Module):
    """Density falling off from the origin (opaque in the middle, so samples behind it are
    dropped), view-dependent colour; pure torch, so it adds no host reads of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(40.0))
        self.tint = nn.Parameter(torch.tensor([0.2, 0.6, 0.9]))

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.relu(0.7 - x.norm(dim=-1))

    def radiance(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.tint) * (0.5 + 0.5 * d.abs())


def make_rays(count: int, device: str) -> Rays:
    g = torch.Generator().manual_seed(7)
    origins = 3.0 * F.normalize(torch.randn(count, 3, generator=g), dim=-1)
    directions = F.normalize(0.6 * torch.randn(count, 3, generator=g) - origins, dim=-1)
    return Rays(origins.to(device), directions.to(device), torch.full((count,), float("inf"), device=device))


def make_grid(device: str) -> OccupancyGrid:
    grid = OccupancyGrid(BOX, 16)
    grid.occupied.copy_((torch.rand(16, 16, 16, generator=torch.Generator().manual_seed(8)) > 0.2))
    return grid.to(device)


# --- the host box -----------------------------------------------------------------------------------


def test_host_box_is_copied_once_per_box() -> None:
    grid = make_grid("cpu")
    first = grid.host_aabb()
    assert first.device.type == "cpu" and torch.equal(first, grid.aabb)
    assert grid.host_aabb() is first  # cached
    assert first.data_ptr() != grid.aabb.data_ptr()  # a copy, not the buffer


def test_host_box_follows_changes_of_the_box() -> None:
    grid = make_grid("cpu")
    before = grid.host_aabb()
    grid.aabb.mul_(2.0)  # in place: the version counter moves
    assert torch.equal(grid.host_aabb(), 2.0 * BOX) and torch.equal(before, BOX)
    other = OccupancyGrid(BOX * 0.5, 16)
    grid.load_state_dict(other.state_dict())
    assert torch.equal(grid.host_aabb(), 0.5 * BOX)
    grid.aabb = BOX * 3.0  # a new buffer
    assert torch.equal(grid.host_aabb(), 3.0 * BOX)
    with torch.inference_mode():
        inference = OccupancyGrid(BOX * 4.0, 16)
    assert torch.equal(inference.host_aabb(), 4.0 * BOX)


# --- render_rays with the switch off ------------------------------------------------------------------


@pytest.mark.parametrize("cone_angle", [0.0, 0.02])
def test_render_rays_runs_no_value_checks_when_the_switch_is_off(
    cone_angle: float, value_check_calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TENSORFIELDS_DEBUG", raising=False)
    field, grid, rays = BlobField(), make_grid("cpu"), make_rays(64, "cpu")
    settings = RenderSettings(step_size=0.02, background=[1.0, 0.5, 0.0], cone_angle=cone_angle)
    out = render_rays(field, grid, rays, settings, jitter=True, generator=torch.Generator().manual_seed(0))
    (out.rgb.sum() + out.depth.sum()).backward()
    render_rays_progressive(field, grid, rays, settings)
    assert value_check_calls == []
    assert out.num_samples > 0 and field.scale.grad is not None
    monkeypatch.setenv("TENSORFIELDS_DEBUG", "1")  # the same call, checked, gives the same image
    checked = render_rays(field, grid, rays, settings, jitter=True, generator=torch.Generator().manual_seed(0))
    assert value_check_calls and torch.equal(checked.rgb, out.rgb) and torch.equal(checked.depth, out.depth)


# --- CUDA: the syncs that remain are size reads ------------------------------------------------------


@requires_cuda
def test_cuda_render_rays_syncs_only_to_read_sizes(
    cuda_sync_count: Callable[[Callable[[], object]], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A training-style call (jitter, a CUDA generator, gradients on) performs exactly the syncs of
    one march_rays (its sample count) and two nonzero() (samples kept in front of opaque
    surfaces, samples that get a colour); and the host box is not copied again."""
    if not status()["cuda"]:
        pytest.skip(f"the native extension has no CUDA kernels here: {status()}")
    monkeypatch.delenv("TENSORFIELDS_DEBUG", raising=False)
    field, grid, rays = BlobField().cuda(), make_grid("cuda"), make_rays(256, "cuda")
    settings = RenderSettings(step_size=0.02, background=[1.0, 0.5, 0.0])
    generator = torch.Generator(device="cuda").manual_seed(0)

    def render() -> None:
        out = render_rays(field, grid, rays, settings, jitter=True, generator=generator)
        assert out.num_samples > 0

    render()  # warm-up (and the one copy of the box)
    assert cuda_sync_count(grid.host_aabb) == 0
    box = grid.host_aabb()
    t_min = torch.zeros(len(rays), device="cuda")
    t_max = torch.full((len(rays),), 4.0, device="cuda")
    flags = torch.rand(1000, device="cuda") > 0.5
    per_march = cuda_sync_count(lambda: march_rays(rays.origins, rays.directions, t_min, t_max, grid.occupied, box, 0.02))
    per_nonzero = cuda_sync_count(flags.nonzero)
    assert cuda_sync_count(render) == per_march + 2 * per_nonzero
