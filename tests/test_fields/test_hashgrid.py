"""instant-ngp's hash-grid field (fields/hashgrid/): its configs and state shapes round-trip, its
outputs and gradients, the one encoding a query computes, appearance codes, levels as slimmable
ranks, native against reference, a density it can fit, and the tiny-cuda-nn backend (skipped
without tinycudann and a GPU). The contract over every field is in test_contract.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import points_inside, requires_cuda, unit_dirs

import fields.hashgrid.field as hashgrid_module
from cuda_ext import hash_level_resolutions, status
from cuda_ext._backend import native
from fields import FIELDS, HashGridField, Slimmable, Voxelized, field_from_config, render_step_size
from fields.hashgrid import trunc_exp
from fields.tensorf import resolution_for_voxels

BOX = torch.tensor([[-1.0, -1.5, -0.5], [1.0, 1.5, 0.5]])
#: a small field: 6 levels (the coarse ones dense, the fine ones hashed into 2^10 rows), 4 to 48 cells
SMALL = dict(levels=6, features_per_level=2, log2_table_size=10, base_resolution=4, finest_resolution=48, hidden=32, geo_features=7)


def small_field(**kwargs) -> HashGridField:
    """A small hash-grid field with a table of large random values (so outputs vary visibly)."""
    field = HashGridField(BOX, **{**SMALL, **kwargs})
    with torch.no_grad():
        field.table.uniform_(-1.0, 1.0)
    return field


def test_registered_with_presets_that_take_the_trainers_grid_for_the_step_and_drop_its_decoder() -> None:
    assert FIELDS["hashgrid"] is HashGridField
    scene = SimpleNamespace(aabb=BOX, ndc=False)
    kwargs = HashGridField.scene_kwargs(scene, resolution=[55, 56, 57], decoder="mlp", appearance_codes=0)
    assert kwargs["resolution"] == [55, 56, 57] and "decoder" not in kwargs
    assert kwargs["log2_table_size"] == 17 and kwargs["finest_resolution"] == 512
    assert HashGridField.scene_kwargs(scene)["resolution"] == resolution_for_voxels(128**3, BOX)
    gpu = HashGridField.scene_kwargs(SimpleNamespace(aabb=BOX, ndc=True), gpu=True)
    assert gpu["log2_table_size"] == 19 and gpu["finest_resolution"] == 2048
    field = HashGridField.from_scene(scene, resolution=[8, 7, 6])
    assert field.table.shape == (16, 1 << 17, 2) and field.resolution == [8, 7, 6]
    assert field.level_resolutions[0] == 16 and field.level_resolutions[-1] == 512
    assert field.table.abs().max() <= 1e-4 and field.table.std() > 1e-5  # instant-ngp's uniform(-1e-4, 1e-4)


def test_config_and_state_shapes_round_trip_to_identical_outputs() -> None:
    field = small_field(appearance_codes=3, active_rank=4)
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    config = field.config()
    assert config["active_rank"] == 4 and config["backend"] == "torch"
    assert HashGridField.state_shapes(config) == {k: tuple(v.shape) for k, v in field.state_dict().items()}
    rebuilt = field_from_config("hashgrid", config)
    rebuilt.load_state_dict(field.state_dict())
    assert rebuilt.config() == config
    x, d, code = points_inside(300, BOX), unit_dirs(300), torch.randint(3, (300,))
    for have, want in zip(rebuilt.query(x, d, code), field.query(x, d, code)):
        torch.testing.assert_close(have, want, rtol=0, atol=0)


def test_outputs_have_their_shapes_and_ranges_and_no_density_outside_the_box() -> None:
    field = small_field()
    x, d = points_inside(500, BOX), unit_dirs(500)
    sigma, rgb = field.query(x, d)
    assert sigma.shape == (500,) and rgb.shape == (500, 3)
    assert bool((sigma > 0).all()) and bool(torch.isfinite(sigma).all())
    assert bool((rgb > 0).all()) and bool((rgb < 1).all())
    assert sigma.std() > 1e-3 and rgb.std() > 1e-3  # the random table shows
    outside = x + torch.tensor([2.5, 0.0, 0.0])
    assert torch.equal(field.density(outside), torch.zeros(500))
    empty_sigma, empty_rgb = field.query(torch.zeros(0, 3), torch.zeros(0, 3))
    assert empty_sigma.shape == (0,) and empty_rgb.shape == (0, 3)
    fresh = HashGridField(BOX, **SMALL)  # the untrained field: a thin fog near exp(density_bias)
    torch.testing.assert_close(fresh.density(x), torch.full((500,), float(torch.exp(torch.tensor(-1.0)))), rtol=1e-2, atol=0)


def test_gradients_reach_the_table_and_both_mlps() -> None:
    field = small_field()
    sigma, rgb = field.query(points_inside(400, BOX), unit_dirs(400))
    (sigma.mean() + rgb.mean()).backward()
    for name, parameter in field.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    field.zero_grad(set_to_none=True)
    field.density(points_inside(400, BOX)).sum().backward()
    assert all(p.grad is None for p in field.colour_net.parameters())
    assert field.table.grad.abs().sum() > 0 and all(p.grad.abs().sum() > 0 for p in field.density_net.parameters())


def test_a_query_encodes_once_and_the_density_runs_no_colour_mlp(monkeypatch: pytest.MonkeyPatch) -> None:
    field = small_field()
    calls = {"encode": 0, "colour": 0}

    def counting(*args, **kwargs):
        calls["encode"] += 1
        return encode(*args, **kwargs)

    encode = hashgrid_module.hash_encode
    monkeypatch.setattr(hashgrid_module, "hash_encode", counting)
    field.colour_net.register_forward_hook(lambda *_: calls.__setitem__("colour", calls["colour"] + 1))
    x, d = points_inside(100, BOX), unit_dirs(100)
    field.query(x, d)
    assert calls == {"encode": 1, "colour": 1}
    field.density(x)
    assert calls == {"encode": 2, "colour": 1}


def test_codes_change_the_colour_and_never_the_density() -> None:
    field = small_field(appearance_codes=4)
    with torch.no_grad():
        field.codes.weight.normal_(0.0, 2.0)
    x, d = points_inside(300, BOX), unit_dirs(300)
    sigma0, rgb0 = field.query(x, d, torch.zeros(300, dtype=torch.long))
    sigma2, rgb2 = field.query(x, d, torch.full((300,), 2))
    assert torch.equal(sigma0, sigma2) and (rgb0 - rgb2).abs().max() > 1e-2
    torch.testing.assert_close(field.radiance(x, d), field.radiance(x, d, field.codes.weight.detach().mean(0)))
    groups = {g["name"]: g for g in field.param_groups()}
    assert groups["codes"]["params"] == [field.codes.weight]


def test_param_groups_are_instant_ngps() -> None:
    field = small_field(appearance_codes=2)
    groups = {g["name"]: g for g in field.param_groups()}
    assert set(groups) == {"hash table", "mlp", "codes"}
    assert groups["hash table"]["params"] == [field.table] and groups["hash table"]["eps"] == 1e-15
    assert groups["hash table"]["lr"] == 1e-2 and groups["mlp"]["lr"] > 0
    assert {id(p) for p in groups["mlp"]["params"]} == {id(p) for p in [*field.density_net.parameters(), *field.colour_net.parameters()]}


def test_trunc_exp_clamps_its_gradient() -> None:
    x = torch.tensor([-2.0, 0.0, 3.0, 40.0], requires_grad=True)
    y = trunc_exp(x)
    y.sum().backward()
    torch.testing.assert_close(y[:3], torch.exp(x[:3].detach()))
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, torch.exp(x.detach().clamp(max=15.0)))


def test_levels_are_the_ranks_and_slimming_keeps_the_coarse_levels() -> None:
    field = small_field(appearance_codes=2)
    assert isinstance(field, Slimmable) and field.ranks == SMALL["levels"]
    x, d = points_inside(300, BOX), unit_dirs(300)
    full = field.query(x, d)
    for rank in range(1, field.ranks):
        slimmed = field.slim(rank)
        assert slimmed.table.shape[0] == rank and slimmed.level_resolutions == field.level_resolutions[:rank]
        assert slimmed.num_parameters() < field.num_parameters()
        field.set_active_rank(rank)
        for have, want in zip(slimmed.query(x, d), field.query(x, d)):
            torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-6)
        assert (field.query(x, d)[0] - full[0]).abs().max() > 1e-4  # the fine levels did matter
    field.set_active_rank(field.ranks)
    torch.testing.assert_close(field.query(x, d)[0], full[0], rtol=0, atol=0)


@pytest.mark.parametrize("levels,base,finest", [(16, 16, 512), (16, 16, 2048), (8, 3, 100), (5, 16, 17)])
def test_slimmed_level_resolutions_match_for_every_rank(levels: int, base: float, finest: float) -> None:
    field = HashGridField(BOX, levels=levels, log2_table_size=4, base_resolution=base, finest_resolution=finest, hidden=16)
    for rank in range(1, levels):
        config = field._slimmed_config(rank)
        assert hash_level_resolutions(rank, float(base), config["finest_resolution"]) == field.level_resolutions[:rank]


def test_native_and_reference_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    field = small_field(appearance_codes=2)
    x, d, code = points_inside(400, BOX), unit_dirs(400), torch.randint(2, (400,))

    def outputs_and_grads() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        field.zero_grad(set_to_none=True)
        sigma, rgb = field.query(x, d, code)
        (sigma.mean() + (rgb - 0.3).square().mean()).backward()
        return [sigma.detach(), rgb.detach()], [p.grad.clone() for p in field.parameters()]

    monkeypatch.setenv("TENSORFIELDS_REFERENCE", "0")
    assert native() is not None, status()["error"]
    native_outputs, native_grads = outputs_and_grads()
    monkeypatch.setenv("TENSORFIELDS_REFERENCE", "1")
    reference_outputs, reference_grads = outputs_and_grads()
    for have, want in zip(native_outputs, reference_outputs):
        torch.testing.assert_close(have, want, rtol=1e-5, atol=1e-5)
    for have, want in zip(native_grads, reference_grads):
        torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-6)


def test_adam_fits_a_ball_of_density() -> None:
    """A ball of density 20 (0 outside) in the box: a few hundred Adam steps at the field's own
    rates bring the error of log(1 + sigma) to a small part of where it started."""
    field = HashGridField(BOX, levels=8, log2_table_size=12, base_resolution=4, finest_resolution=64, hidden=32, geo_features=3)
    optimizer = torch.optim.Adam(field.param_groups(), betas=(0.9, 0.99))
    centre, radius = torch.tensor([0.2, -0.3, 0.0]), 0.45
    generator = torch.Generator().manual_seed(1)

    def loss_at(x: torch.Tensor) -> torch.Tensor:
        target = 20.0 * ((x - centre).norm(dim=-1) < radius).float()
        return (torch.log1p(field.density(x)) - torch.log1p(target)).square().mean()

    test_points = torch.rand(4000, 3, generator=generator) * (BOX[1] - BOX[0]) + BOX[0]
    with torch.no_grad():
        start = float(loss_at(test_points))
    for _ in range(300):
        x = torch.rand(2048, 3, generator=generator) * (BOX[1] - BOX[0]) + BOX[0]
        optimizer.zero_grad()
        loss_at(x).backward()
        optimizer.step()
    with torch.no_grad():
        end = float(loss_at(test_points))
    assert end < 0.1 * start, (start, end)


def test_the_render_step_is_a_fraction_of_the_marching_grids_voxel() -> None:
    field = small_field(resolution=[11, 16, 6])
    assert isinstance(field, Voxelized)
    torch.testing.assert_close(field.voxel_size, torch.full((3,), 0.2))
    assert render_step_size(field, 0.5) == pytest.approx(0.1)
    x = points_inside(100, BOX)
    finer = HashGridField.from_config({**field.config(), "resolution": [40, 40, 40]})
    finer.load_state_dict(field.state_dict())
    torch.testing.assert_close(finer.density(x), field.density(x), rtol=0, atol=0)  # the encoding ignores it
    with pytest.raises(ValueError, match="resolution"):
        HashGridField(BOX, resolution=[1, 4, 4], **SMALL)


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown hash-grid backend"):
        HashGridField(BOX, backend="jax", **SMALL)


@requires_cuda
def test_the_tcnn_backend_has_the_same_interface() -> None:
    pytest.importorskip("tinycudann")
    scene = SimpleNamespace(aabb=BOX, ndc=False)
    field = HashGridField.from_scene(scene, gpu=True, resolution=[8, 7, 6], appearance_codes=2).cuda()
    assert field.backend == "tcnn"
    x, d = points_inside(1000, BOX).cuda(), unit_dirs(1000).cuda()
    sigma, rgb = field.query(x, d, torch.zeros(1000, dtype=torch.long, device="cuda"))
    assert sigma.shape == (1000,) and rgb.shape == (1000, 3) and sigma.dtype == rgb.dtype == torch.float32
    assert bool((sigma >= 0).all()) and bool((rgb >= 0).all()) and bool((rgb <= 1).all())
    (sigma.mean() + rgb.mean()).backward()
    assert all(p.grad is not None for group in field.param_groups() for p in group["params"])
    assert HashGridField.state_shapes(field.config()) == {k: tuple(v.shape) for k, v in field.state_dict().items()}
    rebuilt = field_from_config("hashgrid", field.config()).cuda()
    rebuilt.load_state_dict(field.state_dict())
    torch.testing.assert_close(rebuilt.density(x), field.density(x))
    assert field.query(x[:0], d[:0])[1].shape == (0, 3)
