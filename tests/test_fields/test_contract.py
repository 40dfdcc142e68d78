"""The Field contract, run over every registered field: a new field is tested by being registered.

Each field is built from its presets for a small box (bounded and forward-facing), then checked
for config and state-dict round trips, output shapes and ranges, finite values, parameter groups
that cover every parameter exactly once with the field's own learning rates, and, where the
field has the capability, upsampling and slimming.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import unit_dirs

from fields import FIELDS, Field, Slimmable, Upsampleable, field_from_config, render_step_size
from fields.base import preset_name

BOX = torch.tensor([[-1.0, -0.8, -0.6], [1.0, 0.8, 0.6]])


def build(name: str, forward_facing: bool = False) -> Field:
    """The registered field `name` from its preset for a small scene box, with a coarse grid."""
    scene = SimpleNamespace(aabb=BOX, ndc=forward_facing)
    return FIELDS[name].from_scene(scene, resolution=[8, 7, 6])


def points(n: int) -> torch.Tensor:
    return torch.rand(n, 3) * (BOX[1] - BOX[0]) * 0.9 + BOX[0] * 0.9


registered = pytest.mark.parametrize("name", sorted(FIELDS))


@registered
def test_registry_name_and_presets(name: str) -> None:
    cls = FIELDS[name]
    assert cls.name == name
    for forward_facing in (False, True):
        assert preset_name(forward_facing, False) in cls.presets, f"{name} has no {preset_name(forward_facing, False)} preset"
        field = build(name, forward_facing)
        assert isinstance(field, cls) and torch.equal(field.aabb, BOX)


@registered
def test_outputs_have_the_documented_shapes_and_ranges(name: str) -> None:
    field = build(name)
    x, d = points(300), unit_dirs(300)
    sigma, rgb = field.query(x, d)
    assert sigma.shape == (300,) and rgb.shape == (300, 3)
    assert bool(torch.isfinite(sigma).all()) and bool(torch.isfinite(rgb).all())
    assert bool((sigma >= 0).all()) and bool((rgb >= 0).all()) and bool((rgb <= 1).all())
    torch.testing.assert_close(field.density(x), sigma)
    torch.testing.assert_close(field.radiance(x, d), rgb)
    assert render_step_size(field, 0.5) > 0


@registered
def test_config_and_state_dict_round_trip(name: str) -> None:
    field = build(name)
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    rebuilt = field_from_config(name, field.config())
    rebuilt.load_state_dict(field.state_dict())
    assert rebuilt.config() == field.config()
    x, d = points(200), unit_dirs(200)
    for have, want in zip(rebuilt.query(x, d), field.query(x, d)):
        torch.testing.assert_close(have, want, rtol=0, atol=0)
    assert field.num_parameters() == sum(p.numel() for p in field.parameters()) and field.nbytes() > 0


@registered
def test_param_groups_cover_every_parameter_once(name: str) -> None:
    field = build(name)
    groups = field.param_groups()
    assert all(set(group) >= {"name", "params", "lr"} and group["lr"] > 0 for group in groups)
    assert len({group["name"] for group in groups}) == len(groups)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert set(grouped) == {id(p) for p in field.parameters()}, "a parameter is in no group"


@registered
def test_upsampling_keeps_the_config_consistent(name: str) -> None:
    field = build(name)
    if not isinstance(field, Upsampleable):
        pytest.skip(f"{name} is not upsampleable")
    field.upsample([12, 10, 9])
    rebuilt = field_from_config(name, field.config())
    rebuilt.load_state_dict(field.state_dict())  # shapes follow the config
    x = points(100)
    torch.testing.assert_close(rebuilt.density(x), field.density(x), rtol=0, atol=0)


@registered
def test_slimming_renders_as_the_masked_field(name: str) -> None:
    field = build(name)
    if not isinstance(field, Slimmable):
        pytest.skip(f"{name} is not slimmable")
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    slimmed = field.slim(1)
    assert slimmed.num_parameters() < field.num_parameters()
    field.set_active_rank(1)
    x, d = points(200), unit_dirs(200)
    for have, want in zip(slimmed.query(x, d), field.query(x, d)):
        torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-5)
