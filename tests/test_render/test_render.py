"""Cameras to rays, NDC, occupancy grid, rendering of an analytic field, and camera paths."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from data.cameras import Cameras
from fields import VMField
from fields.base import Field
from render import (
    NDC,
    OccupancyGrid,
    Rays,
    RenderSettings,
    camera_rays,
    image_rays,
    ndc_rays,
    render_image,
    render_rays,
    render_rays_progressive,
)
from render.paths import focus_point, look_at, orbit_path

CENTER = torch.tensor([0.1, -0.05, 0.05])
RADIUS = 0.5
COLOUR = torch.tensor([0.2, 0.6, 0.9])
BACKGROUND = [1.0, 0.0, 1.0]
BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


class SphereField(Field):
    """Constant density `sigma` and colour inside a sphere, nothing outside."""

    name = "sphere"

    def __init__(self, center=CENTER, radius=RADIUS, sigma=1000.0, colour=COLOUR) -> None:
        super().__init__()
        self.register_buffer("aabb", BOX.clone())
        self.center, self.radius, self.sigma, self.colour = center, radius, sigma, colour

    def density(self, x: torch.Tensor) -> torch.Tensor:
        inside = (x - self.center).norm(dim=-1) < self.radius
        return torch.where(inside, torch.full_like(x[:, 0], self.sigma), torch.zeros_like(x[:, 0]))

    def radiance(self, x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self.colour.expand(x.shape[0], 3)


def sphere_hits(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance of each (unit) ray to the sphere centre, and the distance along the ray to the surface."""
    t_closest = ((CENTER - origins) * directions).sum(-1)
    closest = origins + t_closest[:, None] * directions
    miss = (closest - CENTER).norm(dim=-1)
    t_hit = t_closest - torch.sqrt((RADIUS**2 - miss**2).clamp(min=0))
    return miss, t_hit


def make_cameras(n: int = 3, width: int = 24, height: int = 18) -> Cameras:
    g = torch.Generator().manual_seed(3)
    positions = 3.0 * F.normalize(torch.randn(n, 3, generator=g), dim=-1)
    c2w = look_at(positions, torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    return Cameras(
        c2w=c2w,
        fx=torch.tensor([22.0, 25.0, 19.0][:n]),
        fy=torch.tensor([21.0, 27.0, 19.5][:n]),
        cx=torch.tensor([12.0, 11.3, 12.9][:n]),
        cy=torch.tensor([9.0, 8.4, 9.7][:n]),
        width=width,
        height=height,
    )


def settings(step: float = 0.01, **kwargs) -> RenderSettings:
    return RenderSettings(step_size=step, background=list(BACKGROUND), **kwargs)


# --- rays -----------------------------------------------------------------------------------------


def test_camera_rays_pass_through_projected_points() -> None:
    cameras = make_cameras()
    points = torch.rand(50, 3) - 0.5
    pixels, depths = cameras.project(points)
    assert (depths > 0).all()
    for i in range(len(cameras)):
        rays = camera_rays(cameras, torch.full((50,), i), pixels[i, :, 0], pixels[i, :, 1])
        torch.testing.assert_close(rays.directions.norm(dim=-1), torch.ones(50))
        torch.testing.assert_close(rays.origins, cameras.c2w[i, :3, 3].expand(50, 3))
        offset = points - rays.origins
        along = (offset * rays.directions).sum(-1)
        assert (along > 0).all()  # in front of the camera
        off_ray = (offset - along[:, None] * rays.directions).norm(dim=-1)
        assert off_ray.max() < 1e-4
        # z-depth = distance along the ray times the cosine to the optical axis
        torch.testing.assert_close(along * (rays.directions @ cameras.c2w[i, :3, 2]), depths[i], atol=1e-4, rtol=1e-4)
        assert torch.isinf(rays.far).all()


def test_image_rays_count_and_row_major_order() -> None:
    cameras = make_cameras()
    rays = image_rays(cameras, 1)
    assert len(rays) == cameras.width * cameras.height
    k = torch.arange(len(rays))
    expected = torch.stack([k % cameras.width + 0.5, k // cameras.width + 0.5], dim=-1).float()
    pixels, depths = cameras[1].project(rays.origins[0] + 2.0 * rays.directions)
    torch.testing.assert_close(pixels[0], expected, atol=1e-3, rtol=0)
    assert (depths > 0).all()
    direct = camera_rays(cameras, torch.full_like(k, 1), expected[:, 0], expected[:, 1])
    torch.testing.assert_close(rays.directions, direct.directions)


NDC_SETUP = NDC(focal=50.0, width=80, height=60, near=1.0)


def test_ndc_near_plane_to_minus_one_and_infinity_to_plus_one() -> None:
    g = torch.Generator().manual_seed(0)
    origins = 0.2 * torch.randn(30, 3, generator=g)
    directions = F.normalize(torch.cat([0.4 * torch.randn(30, 2, generator=g), -torch.ones(30, 1)], -1), dim=-1)
    rays = ndc_rays(origins, directions, NDC_SETUP)
    torch.testing.assert_close(rays.directions.norm(dim=-1), torch.ones(30))
    torch.testing.assert_close(rays.origins[:, 2], torch.full((30,), -1.0))  # starts on the near plane
    end = rays.origins + rays.far[:, None] * rays.directions
    torch.testing.assert_close(end[:, 2], torch.ones(30), atol=1e-5, rtol=0)  # infinite depth at z = +1

    sx, sy = -2 * NDC_SETUP.focal / NDC_SETUP.width, -2 * NDC_SETUP.focal / NDC_SETUP.height

    def to_ndc(p: torch.Tensor) -> torch.Tensor:
        return torch.stack([sx * p[:, 0] / p[:, 2], sy * p[:, 1] / p[:, 2], 1 + 2 * NDC_SETUP.near / p[:, 2]], -1)

    for depth, z_ndc in [(1.0, -1.0), (2.0, 0.0), (4.0, 0.5), (1e6, 1.0)]:
        # world points at depth `depth` (z = -depth) on each ray, warped by hand, lie on the NDC ray at z_ndc
        t = (-depth - origins[:, 2]) / directions[:, 2]
        world = origins + t[:, None] * directions
        p = to_ndc(world)
        torch.testing.assert_close(p[:, 2], torch.full((30,), z_ndc), atol=1e-5, rtol=0)
        s = ((p - rays.origins) * rays.directions).sum(-1)
        torch.testing.assert_close(rays.origins + s[:, None] * rays.directions, p, atol=1e-4, rtol=0)
        assert (s >= -1e-5).all() and (s <= rays.far + 1e-5).all()


def test_ndc_image_corners() -> None:
    """An OpenCV camera looking down world -z: image corners map to NDC x, y = +-1 (x right, y up)."""
    cam = Cameras(
        c2w=torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0]))[None],
        fx=torch.tensor([50.0]),
        fy=torch.tensor([50.0]),
        cx=torch.tensor([40.0]),
        cy=torch.tensor([30.0]),
        width=80,
        height=60,
    )
    x = torch.tensor([0.0, 80.0, 0.0, 80.0, 40.0])
    y = torch.tensor([0.0, 0.0, 60.0, 60.0, 30.0])
    rays = camera_rays(cam, torch.zeros(5, dtype=torch.long), x, y, NDC_SETUP)
    expected = torch.tensor([[-1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [0.0, 0.0, -1.0]])
    torch.testing.assert_close(rays.origins, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(rays.directions[4], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(rays.far[4], torch.tensor(2.0))


def test_rays_indexing() -> None:
    rays = Rays(torch.randn(5, 3), F.normalize(torch.randn(5, 3), dim=-1), torch.arange(5.0))
    part = rays[1:3]
    assert len(part) == 2 and torch.equal(part.far, torch.tensor([1.0, 2.0]))
    assert torch.equal(part.origins, rays.origins[1:3])


# --- rendering an analytic sphere ----------------------------------------------------------------


@pytest.mark.parametrize("cone_angle", [0.0, 0.004])
def test_render_rays_analytic_sphere(cone_angle: float) -> None:
    g = torch.Generator().manual_seed(1)
    origins = torch.tensor([-3.0, 0.0, 0.0]) + 0.05 * torch.randn(200, 3, generator=g)
    targets = CENTER + torch.tensor([0.0, 1.0, 1.0]) * (1.6 * torch.rand(200, 3, generator=g) - 0.8)
    directions = F.normalize(targets - origins, dim=-1)
    rays = Rays(origins, directions, torch.full((200,), math.inf))
    step = 0.01
    out = render_rays(SphereField(), OccupancyGrid(BOX, 8), rays, settings(step, cone_angle=cone_angle))
    longest_step = max(step, cone_angle * 4.0)  # the sphere is nearer than 4 units
    miss, t_hit = sphere_hits(origins, directions)
    hit, empty = miss < RADIUS - 0.02, miss > RADIUS + 0.02
    assert hit.sum() > 40 and empty.sum() > 40
    assert (out.opacity[hit] > 0.999).all()
    assert (out.opacity[empty] == 0).all()
    torch.testing.assert_close(out.rgb[hit], COLOUR.expand(int(hit.sum()), 3), atol=2e-3, rtol=0)
    torch.testing.assert_close(out.rgb[empty], torch.tensor(BACKGROUND).expand(int(empty.sum()), 3))
    surface = out.depth[hit] / out.opacity[hit]
    assert ((surface - t_hit[hit]).abs() <= longest_step).all(), (surface - t_hit[hit]).abs().max()
    assert out.num_samples > 0
    if cone_angle > 0:  # steps grow with distance: fewer samples than fixed steps
        assert out.num_samples < render_rays(SphereField(), OccupancyGrid(BOX, 8), rays, settings(step)).num_samples


def test_render_image_analytic_sphere() -> None:
    cameras = make_cameras()
    step = 0.02
    for index in range(len(cameras)):
        image = render_image(SphereField(), OccupancyGrid(BOX, 8), cameras, index, settings(step))
        h, w = cameras.height, cameras.width
        assert image["rgb"].shape == (h, w, 3) and image["opacity"].shape == (h, w) and image["depth"].shape == (h, w)
        rays = image_rays(cameras, index)
        miss, t_hit = sphere_hits(rays.origins, rays.directions)
        hit, empty = (miss < RADIUS - 0.03).view(h, w), (miss > RADIUS + 0.03).view(h, w)
        assert hit.any() and empty.any()
        assert (image["opacity"][hit] > 0.999).all() and (image["opacity"][empty] == 0).all()
        torch.testing.assert_close(image["rgb"][hit], COLOUR.expand(int(hit.sum()), 3), atol=2e-3, rtol=0)
        torch.testing.assert_close(image["rgb"][empty], torch.tensor(BACKGROUND).expand(int(empty.sum()), 3))
        surface = (image["depth"] / image["opacity"].clamp(min=1e-8))[hit]
        assert ((surface - t_hit.view(h, w)[hit]).abs() <= step).all()


def test_render_rays_matches_dense_volume_rendering() -> None:
    """render_rays (marching, early stop, colour pruning) against a plain dense quadrature, with gradients."""
    field = VMField(BOX, [10, 10, 10], 2, 3, init_scale=1.5, density_shift=-2.0, distance_scale=5.0, decoder_pe=0)
    g = torch.Generator().manual_seed(2)
    origins = 3.0 * F.normalize(torch.randn(32, 3, generator=g), dim=-1)
    directions = F.normalize(0.5 * torch.rand(32, 3, generator=g) - 0.25 - origins, dim=-1)
    rays = Rays(origins, directions, torch.full((32,), math.inf))
    step = 0.02
    out = render_rays(field, OccupancyGrid(BOX, 4), rays, settings(step))
    loss = out.rgb.sum() + out.depth.sum()
    grads = torch.autograd.grad(loss, [field.density_plane[0], field.app_line[1]])

    # dense reference: same sample positions (from the box entry, fixed step), cumprod transmittance
    t0 = ((BOX[0] - origins) / directions).minimum((BOX[1] - origins) / directions).amax(-1)
    t1 = ((BOX[0] - origins) / directions).maximum((BOX[1] - origins) / directions).amin(-1)
    n = 2 * math.ceil(2 * math.sqrt(3) / step)
    t = t0[:, None] + step * torch.arange(n)[None]
    valid = (t + step / 2 < t1[:, None]).float()
    mid = origins[:, None] + directions[:, None] * (t + step / 2)[..., None]
    sigma = field.density(mid.view(-1, 3)).view(32, n) * valid
    rgb = field.radiance(mid.view(-1, 3), directions[:, None].expand(32, n, 3).reshape(-1, 3)).view(32, n, 3)
    alpha = 1 - torch.exp(-sigma * step)
    trans = torch.cumprod(torch.cat([torch.ones(32, 1), 1 - alpha[:, :-1]], 1), 1)
    weights = alpha * trans
    opacity = weights.sum(1)
    ref_rgb = (weights[..., None] * rgb).sum(1) + (1 - opacity)[:, None] * torch.tensor(BACKGROUND)
    ref_depth = (weights * (t + step / 2)).sum(1)
    assert opacity.min() < 0.9 and opacity.max() > 0.9999  # semi-transparent rays and early-stopped ones
    torch.testing.assert_close(out.opacity, opacity, atol=2e-3, rtol=0)
    torch.testing.assert_close(out.rgb, ref_rgb, atol=2e-3, rtol=0)
    torch.testing.assert_close(out.depth, ref_depth, atol=1e-2, rtol=0)
    ref_grads = torch.autograd.grad(ref_rgb.sum() + ref_depth.sum(), [field.density_plane[0], field.app_line[1]])
    for got, want in zip(grads, ref_grads):
        assert want.abs().max() > 0
        rel = ((got - want).norm() / want.norm()).item()
        assert rel < 2e-2, rel


@pytest.mark.parametrize("segment_steps", [1, 7, 64])
def test_progressive_rendering_matches_single_pass(segment_steps: int) -> None:
    """Inference in depth segments with early ray termination gives the single-pass image."""
    field = VMField(BOX, [10, 10, 10], 2, 3, init_scale=1.5, density_shift=-2.0, distance_scale=5.0, decoder_pe=0)
    g = torch.Generator().manual_seed(3)
    origins = 3.0 * F.normalize(torch.randn(64, 3, generator=g), dim=-1)
    origins[:4] = 0.2 * torch.randn(4, 3, generator=g)  # rays that start inside the box
    directions = F.normalize(0.5 * torch.rand(64, 3, generator=g) - 0.25 - origins, dim=-1)
    rays = Rays(origins, directions, torch.full((64,), math.inf))
    grid = OccupancyGrid(BOX, 8)
    grid.occupied[:, :2] = False  # some empty space to skip
    with torch.no_grad():
        single = render_rays(field, grid, rays, settings(0.02))
        progressive = render_rays_progressive(field, grid, rays, settings(0.02), segment_steps=segment_steps)
    assert single.opacity.max() > 0.9999 and single.opacity.min() < 0.5
    torch.testing.assert_close(progressive.rgb, single.rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(progressive.opacity, single.opacity, atol=1e-5, rtol=0)
    torch.testing.assert_close(progressive.depth, single.depth, atol=1e-4, rtol=0)
    assert progressive.num_samples <= single.num_samples + 64


def test_render_rays_empty_grid_gives_background() -> None:
    grid = OccupancyGrid(BOX, 8)
    grid.occupied.zero_()
    origins = torch.tensor([[-3.0, 0.0, 0.0], [0.0, -3.0, 0.1]])
    rays = Rays(origins, F.normalize(CENTER - origins, dim=-1), torch.full((2,), math.inf))
    out = render_rays(SphereField(), grid, rays, settings())
    assert out.num_samples == 0
    assert torch.equal(out.opacity, torch.zeros(2)) and torch.equal(out.depth, torch.zeros(2))
    torch.testing.assert_close(out.rgb, torch.tensor([BACKGROUND, BACKGROUND]))


def test_render_rays_respects_far() -> None:
    origins = torch.tensor([[-3.0, 0.1, 0.0]] * 2)
    rays = Rays(origins, torch.tensor([[1.0, 0.0, 0.0]] * 2), torch.tensor([2.0, math.inf]))  # first stops before the sphere
    out = render_rays(SphereField(), OccupancyGrid(BOX, 8), rays, settings())
    assert out.opacity[0] == 0 and out.opacity[1] > 0.999
    out = render_rays(SphereField(), OccupancyGrid(BOX, 8), rays, settings(far=2.0))
    assert (out.opacity == 0).all()


# --- occupancy grid -------------------------------------------------------------------------------


def cell_bounds(grid: OccupancyGrid) -> tuple[torch.Tensor, torch.Tensor]:
    res = torch.tensor(grid.resolution)
    ijk = torch.stack(torch.meshgrid(*[torch.arange(r) for r in grid.resolution], indexing="ij"), -1).float()
    size = (grid.aabb[1] - grid.aabb[0]) / res
    lo = grid.aabb[0] + ijk * size
    return lo, lo + size


def test_occupancy_update_marks_sphere_cells() -> None:
    field = SphereField()
    grid = OccupancyGrid(BOX, 16)
    assert grid.occupied.all() and grid.resolution == [16, 16, 16]
    grid.update(field.density, step_size=0.01, generator=torch.Generator().manual_seed(0))
    lo, hi = cell_bounds(grid)
    nearest = torch.maximum(lo - CENTER, torch.zeros(3)).maximum(CENTER - hi).norm(dim=-1)
    farthest = torch.maximum((lo - CENTER).abs(), (hi - CENTER).abs()).norm(dim=-1)
    inside, outside = farthest < RADIUS, nearest > RADIUS
    assert inside.sum() > 50
    assert grid.occupied[inside].all()
    assert not grid.occupied[outside].any()
    # occupied fraction is about the sphere's share of the box
    assert grid.occupancy_fraction() == pytest.approx(4 / 3 * math.pi * RADIUS**3 / 8, rel=0.3)


def test_occupied_box_covers_sphere() -> None:
    grid = OccupancyGrid(BOX, 16)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        grid.update(SphereField().density, step_size=0.01, generator=generator)
    cell = 2.0 / 16
    for margin in (0, 1):
        box = grid.occupied_box(margin=margin)
        assert (box[0] <= CENTER - RADIUS - margin * cell).all() and (box[1] >= CENTER + RADIUS + margin * cell).all(), box
        assert (box[0] > CENTER - RADIUS - (margin + 1) * cell).all(), box
        assert (box[1] < CENTER + RADIUS + (margin + 1) * cell).all(), box
        # on cell boundaries
        torch.testing.assert_close((box - BOX[0]) / cell, ((box - BOX[0]) / cell).round())


def test_occupied_box_none_when_empty() -> None:
    grid = OccupancyGrid(BOX, 4)
    grid.occupied.zero_()
    assert grid.occupied_box() is None
    grid.occupied[3, 0, 2] = True
    torch.testing.assert_close(grid.occupied_box(margin=0), torch.tensor([[0.5, -1.0, 0.0], [1.0, -0.5, 0.5]]))
    # the default margin of one cell is clipped to the grid
    torch.testing.assert_close(grid.occupied_box(), torch.tensor([[0.0, -1.0, -0.5], [1.0, 0.0, 1.0]]))


def test_occupancy_decays_as_moving_max() -> None:
    grid = OccupancyGrid(BOX, 8)
    grid.update(SphereField(sigma=100.0).density, step_size=0.01)
    before = grid.density_ema.clone()
    assert set(before.unique().tolist()) <= {0.0, 100.0}
    grid.update(lambda x: torch.zeros(x.shape[0]), step_size=0.01, decay=0.5)
    torch.testing.assert_close(grid.density_ema, before * 0.5)
    grid.update(lambda x: torch.full((x.shape[0],), 30.0), step_size=0.01, decay=0.5)
    torch.testing.assert_close(grid.density_ema, torch.maximum(before * 0.25, torch.full_like(before, 30.0)))
    assert grid.occupied.all()


def test_occupancy_inherits_the_running_density_of_a_larger_grid() -> None:
    """After a shrink, a field that is still faint keeps the cells an earlier update found occupied."""
    grid = OccupancyGrid(BOX, 16)
    grid.update(SphereField(sigma=100.0).density, step_size=0.01)
    smaller = OccupancyGrid(torch.stack([CENTER - 0.5, BOX[1]]), [12, 10, 9])
    smaller.inherit(grid)
    centers = smaller.cell_centers(torch.arange(12 * 10 * 9), jitter=False)
    diagonal = 2.0 / 16 * math.sqrt(3.0)  # a cell of `grid` lies within this of any of its points
    inside_sphere = (centers - CENTER).norm(dim=-1) < RADIUS - diagonal
    outside_sphere = (centers - CENTER).norm(dim=-1) > RADIUS + diagonal
    assert (smaller.density_ema[inside_sphere] == 100.0).all() and (smaller.density_ema[outside_sphere] == 0.0).all()
    smaller.update(lambda x: torch.zeros(x.shape[0]), step_size=0.01, decay=0.8)
    assert smaller.occupied.view(-1)[inside_sphere].all() and not smaller.occupied.view(-1)[outside_sphere].any()


def test_occupancy_adopts_a_teachers_cells_in_the_same_box_exactly() -> None:
    """A distilled student starts with its teacher's grid: the same box and resolution copy it."""
    teacher = OccupancyGrid(BOX, 16)
    teacher.update(SphereField(sigma=100.0).density, step_size=0.01)
    teacher.occupied.view(-1)[7] = True  # a cell the running density does not explain is kept too
    student = OccupancyGrid(BOX, 16)
    student.adopt(teacher)
    assert torch.equal(student.occupied, teacher.occupied)
    assert torch.equal(student.density_ema, teacher.density_ema)


def test_occupancy_adopts_a_teachers_cells_resampled_to_another_box() -> None:
    """A finer grid over a larger box: cells whose centres fall in an occupied teacher cell are
    occupied, cells outside the teacher's box are empty with no running density."""
    teacher = OccupancyGrid(BOX, 16)
    teacher.update(SphereField(sigma=100.0).density, step_size=0.01)
    box = torch.stack([BOX[0] - 0.5, BOX[1]])
    student = OccupancyGrid(box, [30, 24, 24])
    student.adopt(teacher)
    centers = student.cell_centers(torch.arange(30 * 24 * 24), jitter=False)
    outside_box = (centers < BOX[0]).any(dim=-1)
    assert outside_box.any() and not student.occupied.view(-1)[outside_box].any()
    assert (student.density_ema[outside_box] == 0.0).all()
    diagonal = 2.0 / 16 * math.sqrt(3.0)
    distance = (centers - CENTER).norm(dim=-1)
    occupied = student.occupied.view(-1)
    assert occupied[distance < RADIUS - diagonal].all() and not occupied[distance > RADIUS + diagonal].any()
    assert student.occupancy_fraction() == pytest.approx(teacher.occupancy_fraction() * 2.0**3 / 2.5**3, rel=0.25)


def test_faded_occupancy_drops_below_the_threshold_after_the_given_number_of_updates() -> None:
    grid = OccupancyGrid(BOX, 8)
    grid.update(SphereField(sigma=1e4).density, step_size=0.01)
    threshold = -math.log(1.0 - 1e-3) / 0.01
    grid.fade(step_size=0.01, alpha_threshold=1e-3, updates=3, decay=0.5)
    assert grid.density_ema.max() == pytest.approx(8 * threshold)
    for _ in range(2):
        grid.update(lambda x: torch.zeros(x.shape[0]), step_size=0.01, decay=0.5)
        assert grid.density_ema.max() > threshold
    grid.update(lambda x: torch.zeros(x.shape[0]), step_size=0.01, decay=0.5)
    assert grid.density_ema.max() <= threshold * (1 + 1e-6)


def test_occupancy_partial_update() -> None:
    grid = OccupancyGrid(BOX, 8)
    grid.update(lambda x: torch.ones(x.shape[0]), step_size=0.01, fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert int((grid.density_ema > 0).sum()) == 512 // 4


class CubeField(SphereField):
    """Constant density and colour in an axis-aligned cube."""

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi

    def density(self, x: torch.Tensor) -> torch.Tensor:
        inside = ((x >= self.lo) & (x <= self.hi)).all(-1)
        return torch.where(inside, torch.full_like(x[:, 0], 50.0), torch.zeros_like(x[:, 0]))


def test_occupancy_grid_skips_empty_space_without_changing_image() -> None:
    """A cube on cell boundaries: every cell is full or empty, so pruning must not change the image."""
    lo, hi = torch.tensor([-0.25, -0.5, -0.125]), torch.tensor([0.5, 0.25, 0.375])  # multiples of the 0.125 cell
    field = CubeField(lo, hi)
    grid = OccupancyGrid(BOX, 16)
    grid.update(field.density, step_size=0.01, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(grid.occupied_box(margin=0), torch.stack([lo, hi]))
    assert grid.occupied.sum() == 6 * 6 * 4
    g = torch.Generator().manual_seed(5)
    origins = 3.0 * F.normalize(torch.randn(100, 3, generator=g), dim=-1)
    directions = F.normalize((lo + hi) / 2 + 1.2 * (torch.rand(100, 3, generator=g) - 0.5) - origins, dim=-1)
    rays = Rays(origins, directions, torch.full((100,), math.inf))
    full = render_rays(field, OccupancyGrid(BOX, 16), rays, settings())
    pruned = render_rays(field, grid, rays, settings())
    assert 0 < pruned.num_samples < full.num_samples / 3
    assert (full.opacity > 0.99).sum() > 20 and (full.opacity == 0).sum() > 10
    torch.testing.assert_close(pruned.opacity, full.opacity, atol=1e-6, rtol=0)
    torch.testing.assert_close(pruned.rgb, full.rgb, atol=1e-6, rtol=0)
    torch.testing.assert_close(pruned.depth, full.depth, atol=1e-5, rtol=0)


# --- settings -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ndc", [None, NDC(focal=407.5, width=504, height=378, near=1.0)])
def test_render_settings_round_trip(ndc: NDC | None) -> None:
    original = RenderSettings(step_size=0.004, near=0.1, far=6.0, background=[0.0, 0.5, 1.0], early_stop_eps=1e-3, weight_threshold=1e-3, ndc=ndc)
    values = json.loads(json.dumps(original.to_dict()))
    restored = RenderSettings.from_dict(values)
    assert restored == original
    assert restored.ndc == ndc and (ndc is None or isinstance(restored.ndc, NDC))


# --- camera paths --------------------------------------------------------------------------------


def test_look_at_orthonormal_and_centred() -> None:
    g = torch.Generator().manual_seed(4)
    positions = 4.0 * torch.randn(10, 3, generator=g)
    target = torch.tensor([0.3, -0.2, 0.5])
    up = torch.tensor([0.0, 0.0, 1.0])
    c2w = look_at(positions, target, up)
    assert c2w.shape == (10, 4, 4)
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3).expand(10, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(10))
    torch.testing.assert_close(c2w[:, :3, 3], positions)
    torch.testing.assert_close(c2w[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(10, 4))
    cams = Cameras(c2w=c2w, fx=30.0, fy=30.0, cx=16.0, cy=12.0, width=32, height=24)
    pixels, depths = cams.project(torch.stack([target, target + 0.1 * up]))
    torch.testing.assert_close(pixels[:, 0], torch.tensor([16.0, 12.0]).expand(10, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(depths[:, 0], (target - positions).norm(dim=-1))
    # world up is image up: a point above the target lands straight above the centre
    torch.testing.assert_close(pixels[:, 1, 0], torch.full((10,), 16.0), atol=1e-4, rtol=0)
    assert (pixels[:, 1, 1] < 12.0).all()


def test_orbit_path_looks_at_focus() -> None:
    focus = torch.tensor([0.2, -0.1, 0.3])
    up = torch.tensor([0.0, 0.0, 1.0])
    elevation = math.radians(30.0)
    azimuth = 0.3 + torch.arange(7) * (2 * math.pi / 7)  # around the object (world up from the mean image up)
    ring = torch.stack([torch.cos(azimuth), torch.sin(azimuth), torch.zeros(7)], -1)
    positions = focus + 3.0 * (math.cos(elevation) * ring + math.sin(elevation) * up)
    reference = Cameras(c2w=look_at(positions, focus, up), fx=torch.arange(7.0) + 20, fy=21.0, cx=15.0, cy=11.0, width=30, height=22)
    torch.testing.assert_close(focus_point(reference.c2w), focus, atol=1e-4, rtol=0)
    path = orbit_path(reference, 12)
    assert len(path) == 12 and path.width == 30 and path.height == 22
    assert torch.equal(path.fx, torch.full((12,), 20.0))
    pixels, depths = path.project(focus[None])
    torch.testing.assert_close(pixels[:, 0], torch.tensor([15.0, 11.0]).expand(12, 2), atol=1e-3, rtol=0)
    offsets = path.centers - focus
    torch.testing.assert_close(offsets.norm(dim=-1), torch.full((12,), 3.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(offsets @ up / 3.0, torch.full((12,), math.sin(elevation)), atol=1e-4, rtol=0)
    torch.testing.assert_close(path.centers[0], positions[0], atol=1e-4, rtol=0)  # starts at the first camera
    # a full, evenly spaced turn around the up axis
    angles = torch.atan2(offsets[:, 1], offsets[:, 0])
    steps = torch.remainder(angles.roll(-1) - angles, 2 * math.pi)
    torch.testing.assert_close(steps, torch.full((12,), 2 * math.pi / 12), atol=1e-4, rtol=0)
    # image up stays world up
    torch.testing.assert_close(path.c2w[:, :3, 1] @ up, torch.full((12,), -math.cos(elevation)), atol=1e-4, rtol=0)
