"""Per-image appearance codes (fields/appearance.py, fed to the decoder through fields/head.py),
over every registered field: they change the colour only, never the density; indices, given
codes and the mean code select them; configs and state shapes round-trip; slimming keeps them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import make_grid_field, unit_dirs

from fields import FIELDS, Field, Slimmable, field_from_config
from fields.appearance import AppearanceCodes, codes_of
from fields.decoders import make_decoder

BOX = torch.tensor([[-1.0, -0.8, -0.6], [1.0, 0.8, 0.6]])
CODES = 5

registered = pytest.mark.parametrize("name", sorted(FIELDS))


def coded(name: str) -> Field:
    """The registered field `name` with `CODES` appearance codes drawn at random."""
    field = FIELDS[name].from_scene(SimpleNamespace(aabb=BOX, ndc=False), resolution=[8, 7, 6], appearance_codes=CODES)
    with torch.no_grad():
        field.codes.weight.normal_(0.0, 2.0)
    return field


def points(n: int) -> torch.Tensor:
    return torch.rand(n, 3) * (BOX[1] - BOX[0]) * 0.9 + BOX[0] * 0.9


@registered
def test_codes_change_the_colour_and_never_the_density(name: str) -> None:
    field = coded(name)
    x, d = points(400), unit_dirs(400)
    first, second = torch.zeros(400, dtype=torch.long), torch.full((400,), 3)
    sigma, rgb = field.query(x, d, first)
    sigma_other, rgb_other = field.query(x, d, second)
    assert torch.equal(sigma, sigma_other) and torch.equal(sigma, field.density(x))
    assert (rgb - rgb_other).abs().max() > 1e-3
    sigma.sum().backward(retain_graph=True)  # a fused query shares one graph for both outputs
    assert field.codes.weight.grad is None  # the density does not depend on the codes at all
    rgb.sum().backward()
    assert field.codes.weight.grad[0].abs().sum() > 0 and field.codes.weight.grad[1:].abs().sum() == 0


@registered
def test_indices_given_codes_and_the_mean_code_select_the_same_colours(name: str) -> None:
    field = coded(name)
    x, d = points(200), unit_dirs(200)
    index = torch.randint(CODES, (200,))
    weight = field.codes.weight.detach()
    torch.testing.assert_close(field.radiance(x, d, index), field.radiance(x, d, weight[index]))
    torch.testing.assert_close(field.radiance(x, d), field.radiance(x, d, weight.mean(0)))


@registered
def test_fields_without_codes_ignore_them(name: str) -> None:
    field = FIELDS[name].from_scene(SimpleNamespace(aabb=BOX, ndc=False), resolution=[8, 7, 6])
    assert codes_of(field) is None and field.config()["appearance_codes"] == 0
    x, d = points(100), unit_dirs(100)
    assert torch.equal(field.radiance(x, d, torch.zeros(100, dtype=torch.long)), field.radiance(x, d))


@registered
def test_codes_round_trip_through_config_state_shapes_and_param_groups(name: str) -> None:
    field = coded(name)
    config = field.config()
    assert config["appearance_codes"] == CODES
    shapes = type(field).state_shapes(config)
    assert shapes == {k: tuple(v.shape) for k, v in field.state_dict().items()}
    assert shapes["codes.weight"] == (CODES, field.codes.dim)
    rebuilt = field_from_config(name, config)
    rebuilt.load_state_dict(field.state_dict())
    x, d, index = points(100), unit_dirs(100), torch.randint(CODES, (100,))
    torch.testing.assert_close(rebuilt.radiance(x, d, index), field.radiance(x, d, index))
    groups = {g["name"]: g["params"] for g in field.param_groups()}
    assert groups["codes"] == [field.codes.weight]


@registered
def test_slimming_keeps_the_codes(name: str) -> None:
    field = coded(name)
    assert isinstance(field, Slimmable)
    slimmed = field.slim(1)
    assert torch.equal(slimmed.codes.weight, field.codes.weight)


def test_a_config_of_an_older_version_builds_no_codes() -> None:
    field = make_grid_field("vm")
    config = {k: v for k, v in field.config().items() if k not in ("appearance_codes", "appearance_code_dim")}
    assert codes_of(field_from_config("vm", config)) is None
    assert "codes.weight" not in FIELDS["vm"].state_shapes(config)


def test_the_sh_decoder_refuses_codes_in_one_line() -> None:
    with pytest.raises(ValueError) as info:
        make_grid_field("vm", decoder="sh", appearance_codes=3)
    assert "\n" not in str(info.value) and "--decoder mlp" in str(info.value)
    with pytest.raises(ValueError):
        make_decoder("sh", 27, code_dim=8)


def test_codes_start_at_zero_and_refuse_an_empty_table() -> None:
    codes = AppearanceCodes(4, 8)
    assert torch.equal(codes.weight, torch.zeros(4, 8)) and codes(None, 3).shape == (3, 8)
    with pytest.raises(ValueError):
        AppearanceCodes(0, 8)
