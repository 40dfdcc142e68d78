"""Scene contraction: the map itself, the contracted marcher (native against reference), and
rendering and training of unbounded scenes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cuda_ext import reference
from cuda_ext.ops import march_rays
from fields import field_class
from render import CONTRACTED_AABB, Contraction, Model, OccupancyGrid, Rays, RenderSettings, foreground_ball
from render.contraction import contract, contracted_stretch
from render.paths import look_at
from render.renderer import render_rays, render_rays_progressive

BOX = torch.tensor(CONTRACTED_AABB)


def test_contraction_keeps_the_unit_ball_and_sends_infinity_to_radius_two() -> None:
    g = torch.Generator().manual_seed(0)
    directions = F.normalize(torch.randn(200, 3, generator=g), dim=-1)
    radii = torch.tensor([0.0, 0.3, 0.999, 1.0, 1.001, 2.0, 10.0, 1e3, 1e6])
    points = (radii[:, None, None] * directions[None]).reshape(-1, 3)
    contracted = contract(points).reshape(len(radii), -1, 3)
    torch.testing.assert_close(contracted[:4], points.reshape(len(radii), -1, 3)[:4])  # inside: unchanged
    norms = contracted.norm(dim=-1)
    torch.testing.assert_close(norms[4:], (2.0 - 1.0 / radii[4:, None]).expand_as(norms[4:]), rtol=1e-5, atol=1e-6)
    assert (norms < 2.0 + 1e-6).all() and norms[-1].min() > 2.0 - 1e-5
    # directions are kept
    torch.testing.assert_close(F.normalize(contracted[5:], dim=-1), directions.expand(4, -1, -1), atol=1e-5, rtol=0)


def test_contraction_jacobian_is_right() -> None:
    g = torch.Generator().manual_seed(1)
    for scale in (0.5, 1.7, 30.0):  # inside, just outside, far out
        points = (scale * F.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=-1)).requires_grad_()
        assert torch.autograd.gradcheck(contract, (points,))


def test_stretch_is_the_inverse_speed_in_contracted_space() -> None:
    g = torch.Generator().manual_seed(2)
    points = F.normalize(torch.randn(300, 3, generator=g, dtype=torch.float64), dim=-1) * torch.rand(300, 1, generator=g) * 20.0
    directions = F.normalize(torch.randn(300, 3, generator=g, dtype=torch.float64), dim=-1)
    speed = torch.func.jvp(contract, (points,), (directions,))[1].norm(dim=-1)
    stretch = reference.contraction_stretch(points, directions)
    torch.testing.assert_close(stretch, 1.0 / speed, rtol=1e-9, atol=1e-9)
    # the occupancy grid's stretch of a cell is the largest one there (going straight out)
    radial = reference.contraction_stretch(points, F.normalize(points, dim=-1))
    torch.testing.assert_close(contracted_stretch(contract(points)), radial, rtol=1e-6, atol=1e-6)
    assert (stretch <= radial + 1e-9).all()


def _rays(count: int, seed: int, spread: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from inside and outside the unit ball, in every direction."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(count, 3, generator=g) * spread
    return origins, F.normalize(torch.randn(count, 3, generator=g), dim=-1)


@pytest.mark.parametrize("cone_angle", [0.0, 0.02])
@pytest.mark.parametrize("occupancy", [0.0, 0.3, 1.0])
def test_contracted_march_matches_reference(cone_angle: float, occupancy: float) -> None:
    g = torch.Generator().manual_seed(3)
    origins, directions = _rays(300, seed=4)
    occupied = torch.rand(16, 12, 20, generator=g) < occupancy
    jitter = torch.rand(300, generator=g)
    t_min, t_max = torch.full((300,), 0.05), torch.full((300,), 1e6)
    args = (origins, directions, t_min, t_max, occupied, BOX, 0.02, jitter, cone_angle, 0.3 if cone_angle else math.inf)
    expected = reference.march_rays(*args, contracted=True)
    got = march_rays(*args, contracted=True)
    for name, want, have in zip(("ray_indices", "t_starts", "t_ends", "packed_info"), expected, got):
        assert have.shape == want.shape, name
        torch.testing.assert_close(have, want, rtol=1e-6, atol=1e-6, msg=name)
    assert (expected[0].numel() == 0) == (occupancy == 0.0)


def test_contracted_steps_stay_short_in_contracted_space_and_reach_the_far_shell() -> None:
    origins, directions = _rays(100, seed=5, spread=0.5)
    occupied = torch.ones(32, 32, 32, dtype=torch.bool)
    t_min, t_max = torch.zeros(100), torch.full((100,), 1e8)
    ray_indices, t_starts, t_ends, packed_info = march_rays(origins, directions, t_min, t_max, occupied, BOX, 0.01, contracted=True)
    starts = contract(origins[ray_indices] + directions[ray_indices] * t_starts[:, None])
    ends = contract(origins[ray_indices] + directions[ray_indices] * t_ends[:, None])
    # about the step, going out or across (the stretch is exact where each step starts)
    assert (ends - starts).norm(dim=-1).max() < 0.0105
    last = packed_info[:, 0] + packed_info[:, 1] - 1
    assert ends[last].norm(dim=-1).min() > 1.99  # every ray marches out to (almost) infinity
    assert packed_info[:, 1].max() < 400  # ... in about (2 + 1) / step steps, not t_max / step


def _unbounded_model(seed: int = 0) -> Model:
    """A small VM field over contracted space with density everywhere, dense enough that most
    rays turn opaque inside the ball, and a foreground ball."""
    torch.manual_seed(seed)
    field = field_class("vm")(aabb=BOX, resolution=[24, 24, 24], density_components=4, appearance_components=4)
    with torch.no_grad():
        for name, parameter in field.named_parameters():
            parameter.add_((3.0 if name.startswith("density") else 0.3) * torch.randn_like(parameter))
    contraction = Contraction((0.5, -0.2, 0.1), 2.0)
    settings = RenderSettings(step_size=0.02, near=0.05, far=1e10, background=[0.0, 0.0, 0.0], contraction=contraction)
    return Model(field, OccupancyGrid(BOX, 16), settings)


def test_progressive_rendering_equals_one_pass_in_contracted_space() -> None:
    model = _unbounded_model()
    origins, directions = _rays(256, seed=6, spread=2.0)
    rays = Rays(origins, directions, torch.full((256,), math.inf))
    queried = []
    density = model.field.density
    model.field.density = lambda x: queried.append(len(x)) or density(x)  # counts the density queries
    with torch.no_grad():
        whole = render_rays(model.field, model.grid, rays, model.settings)
        whole_queries = sum(queried)
        queried.clear()
        progressive = render_rays_progressive(model.field, model.grid, rays, model.settings, segment_steps=8)
    torch.testing.assert_close(progressive.rgb, whole.rgb, atol=2e-4, rtol=0)
    torch.testing.assert_close(progressive.opacity, whole.opacity, atol=2e-4, rtol=0)
    torch.testing.assert_close(progressive.depth, whole.depth, atol=0.05, rtol=1e-3)
    assert sum(queried) < 0.8 * whole_queries  # rays stopped once opaque: the rest is never queried


def test_contracted_rendering_is_the_same_wherever_the_world_is() -> None:
    """Moving and scaling the world with the foreground ball changes nothing but depth's units."""
    model = _unbounded_model()
    origins, directions = _rays(128, seed=7, spread=2.0)
    center = torch.tensor(model.settings.contraction.center)
    unit_ball = {"contraction": Contraction((0, 0, 0), 1.0), "near": model.settings.near / 2.0, "far": model.settings.far / 2.0}
    unit = Model(model.field, model.grid, RenderSettings(**{**model.settings.__dict__, **unit_ball}))
    with torch.no_grad():
        world = render_rays(model.field, model.grid, Rays(origins * 2.0 + center, directions, torch.full((128,), math.inf)), model.settings)
        local = render_rays(unit.field, unit.grid, Rays(origins, directions, torch.full((128,), math.inf)), unit.settings)
    torch.testing.assert_close(world.rgb, local.rgb, atol=1e-4, rtol=0)
    # depth in world units (rays whose depth lies far out, where steps are huge and rounding in
    # the moved origins changes which steps are taken, are left out)
    near = local.depth < 4.0
    assert near.float().mean() > 0.5
    torch.testing.assert_close(world.depth[near], 2.0 * local.depth[near], atol=1e-3, rtol=1e-4)


def test_settings_with_contraction_survive_a_round_trip() -> None:
    settings = _unbounded_model().settings
    assert RenderSettings.from_dict(settings.to_dict()) == settings


def test_foreground_ball_is_centred_on_what_the_cameras_look_at() -> None:
    angles = torch.linspace(0, 2 * math.pi, 13)[:-1]
    target = torch.tensor([1.0, 2.0, 0.5])
    positions = target + torch.stack([4 * torch.cos(angles), 4 * torch.sin(angles), torch.full_like(angles, 1.0)], dim=-1)
    ball = foreground_ball(look_at(positions, target, torch.tensor([0.0, 0.0, 1.0])))
    torch.testing.assert_close(torch.tensor(ball.center), target, atol=1e-4, rtol=0)
    assert ball.radius == pytest.approx(0.5 * math.sqrt(17.0), rel=1e-5)
