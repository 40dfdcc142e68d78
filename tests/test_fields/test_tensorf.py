"""Grid fields (VM, CP), their factor lookups, regularizers, resampling and decoders."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import GRID_FIELD_AABB as AABB
from conftest import GRID_FIELD_RESOLUTION as RESOLUTION
from conftest import make_grid_field as make_field
from conftest import points_inside, unit_dirs

from cuda_ext.reference import sample_line, sample_plane
from fields import CPField, VMField, field_from_config
from fields.base import Upsampleable
from fields.decoders import MLPDecoder, SHDecoder, positional_encoding, sh_basis
from fields.factors import total_variation
from fields.tensorf.grid import TensorGridField, resolution_for_voxels
from fields.tensorf.vm import LINE_AXES, PLANE_AXES



def lerp_table(values: torch.Tensor, u: float) -> torch.Tensor:
    """Hand-written linear interpolation of `values [..., L]` at normalized u in [-1, 1] (ends at grid points)."""
    pos = (u + 1.0) / 2.0 * (values.shape[-1] - 1)
    i0 = min(int(math.floor(pos)), values.shape[-1] - 2)
    frac = pos - i0
    return (1.0 - frac) * values[..., i0] + frac * values[..., i0 + 1]


fields_and_decoders = pytest.mark.parametrize("kind,decoder", [("vm", "mlp"), ("vm", "sh"), ("cp", "mlp"), ("cp", "sh")])


# --- Field interface ---------------------------------------------------------------------------


@fields_and_decoders
def test_shapes_and_ranges(kind: str, decoder: str) -> None:
    field = make_field(kind, decoder)
    x, d = points_inside(500), unit_dirs(500)
    sigma, rgb = field.query(x, d)
    assert sigma.shape == (500,) and rgb.shape == (500, 3)
    assert sigma.dtype == torch.float32 and rgb.dtype == torch.float32
    assert (sigma >= 0).all()
    assert torch.equal(sigma, field.density(x)) and torch.equal(rgb, field.radiance(x, d))
    assert rgb.min() >= 0.0
    if decoder == "mlp":
        assert rgb.max() <= 1.0  # the SH case has its own test below


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_sh_radiance_within_unit_range(kind: str) -> None:
    """DESIGN.md: radiance is RGB in [0, 1] for every field, whatever the decoder."""
    field = make_field(kind, "sh")
    with torch.no_grad():
        field.basis.weight.mul_(5.0)  # a trained field's SH coefficients easily reach this size
    rgb = field.radiance(points_inside(500), unit_dirs(500))
    assert rgb.min() >= 0.0
    assert rgb.max() <= 1.0, (
        f"{kind}/sh: radiance reaches {rgb.max().item():.3f} > 1, breaking the Field contract (RGB in [0, 1]); "
        "SHDecoder.forward applies relu(. + 0.5) with no upper clamp"
    )


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_density_zero_outside_box(kind: str) -> None:
    field = make_field(kind)
    inside = points_inside(300)
    assert (field.density(inside) > 0).all()  # softplus(.) > 0 everywhere inside
    # push each point out of the box along one random axis, by up to half the box size
    outside = inside.clone()
    axis = torch.randint(0, 3, (300,))
    side = torch.randint(0, 2, (300,))
    size = AABB[1] - AABB[0]
    rows = torch.arange(300)
    outside[rows, axis] = AABB[side, axis] + (side * 2 - 1) * (0.01 + 0.5 * torch.rand(300)) * size[axis]
    assert torch.equal(field.density(outside), torch.zeros(300))
    far = torch.tensor([[10.0, 0.0, 0.0], [0.0, -7.0, 0.0], [0.0, 0.0, 0.51], [-1.001, 0.0, 0.0]])
    assert torch.equal(field.density(far), torch.zeros(4))


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_config_round_trip(kind: str) -> None:
    field = make_field(kind)
    field.upsample([11, 15, 7])
    field.shrink(torch.tensor([[-0.6, -1.0, -0.3], [0.7, 1.2, 0.4]]))
    cfg = json.loads(json.dumps(field.config()))  # JSON-able
    rebuilt = field_from_config(field.name, cfg)
    assert type(rebuilt) is type(field)
    assert rebuilt.config() == cfg
    rebuilt.load_state_dict(field.state_dict())
    x, d = points_inside(400, field.aabb), unit_dirs(400)
    sigma, rgb = field.query(x, d)
    sigma2, rgb2 = rebuilt.query(x, d)
    assert torch.equal(sigma, sigma2) and torch.equal(rgb, rgb2)
    assert (sigma > 0).all()


def test_field_from_config_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown field 'nope'"):
        field_from_config("nope", {})


# --- upsample / shrink ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_upsample_refinement_is_exact(kind: str) -> None:
    """n -> 2n-1 grid points keeps every old grid point and adds midpoints: piecewise (bi)linear
    factors are represented exactly, so the field is unchanged everywhere."""
    field = make_field(kind)
    assert isinstance(field, Upsampleable)
    x, d = points_inside(2000), unit_dirs(2000)
    sigma, rgb = field.query(x, d)
    new = [2 * r - 1 for r in RESOLUTION]
    field.upsample(new)
    assert field.resolution == new
    if kind == "vm":
        for plane, line, (a, b), c in zip(field.density_plane, field.density_line, PLANE_AXES, LINE_AXES):
            assert plane.shape[2:] == (new[b], new[a]) and line.shape[2:] == (new[c], 1)
    else:
        for axis, line in enumerate(field.density_line):
            assert line.shape[2:] == (new[axis], 1)
    sigma2, rgb2 = field.query(x, d)
    torch.testing.assert_close(sigma2, sigma, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rgb2, rgb, atol=1e-5, rtol=1e-5)


def _smooth_factors(field: TensorGridField) -> None:
    """Replace every factor by smooth functions of its normalized coordinates."""
    with torch.no_grad():
        for k, p in enumerate(field.factor_parameters()):
            r, h, w = p.shape[1], p.shape[2], p.shape[3]
            u = torch.linspace(-1, 1, w)[None, None, :]
            v = torch.linspace(-1, 1, h)[None, :, None]
            comp = torch.arange(r, dtype=torch.float32)[:, None, None]
            p.copy_((0.4 * torch.cos(1.3 * v + 0.7 * comp + k) * torch.cos(0.9 * u - 0.3 * comp) + 0.3)[None])


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_upsample_smooth_factors_changes_little(kind: str) -> None:
    field = make_field(kind)
    _smooth_factors(field)
    x, d = points_inside(2000), unit_dirs(2000)
    sigma, rgb = field.query(x, d)
    field.upsample([20, 27, 12])
    sigma2, rgb2 = field.query(x, d)
    rel_sigma = ((sigma2 - sigma).abs().max() / sigma.abs().max()).item()
    rel_rgb = ((rgb2 - rgb).abs().max() / rgb.abs().max()).item()
    assert rel_sigma < 1e-2 and rel_rgb < 1e-2, (rel_sigma, rel_rgb)
    assert (sigma2 - sigma).abs().max() > 0  # resampling did happen (not a refinement)


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_shrink_keeps_field_inside_new_box(kind: str) -> None:
    field = make_field(kind)
    voxel = field.voxel_size.clone()
    origin = field.aabb[0].clone()
    box = torch.tensor([[-0.3, -0.2, -0.1], [0.55, 1.0, 0.45]])
    x = torch.rand(3000, 3) * (box[1] - box[0]) + box[0]
    d = unit_dirs(3000)
    sigma, rgb = field.query(x, d)
    field.shrink(box)
    new = field.aabb
    assert (new[0] <= box[0] + 1e-6).all() and (new[1] >= box[1] - 1e-6).all(), new
    # grid aligned: corners on the old grid, tight (within one voxel of the requested box)
    steps = (new - origin) / voxel
    torch.testing.assert_close(steps, steps.round(), atol=1e-4, rtol=0)
    assert (new[0] > box[0] - voxel).all() and (new[1] < box[1] + voxel).all()
    # same spacing: resolution = extent / voxel + 1
    assert field.resolution == ((new[1] - new[0]) / voxel + 1).round().long().tolist()
    torch.testing.assert_close(field.voxel_size, voxel)
    sigma2, rgb2 = field.query(x, d)
    torch.testing.assert_close(sigma2, sigma, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rgb2, rgb, atol=1e-5, rtol=1e-5)


def test_shrink_clips_to_field_box() -> None:
    field = make_field("vm")
    field.shrink(torch.tensor([[-5.0, 0.0, -5.0], [5.0, 5.0, 0.0]]))
    torch.testing.assert_close(field.aabb, torch.tensor([[-1.0, 0.0, -0.5], [1.0, 1.5, 0.0]]))
    assert field.resolution == [9, 7, 3]


# --- regularization, parameters, sizes ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_regularization_l1(kind: str) -> None:
    field = make_field(kind)
    assert field.regularization() == {}  # all weights zero by default
    field.reg_weights["l1"] = 0.25
    if kind == "vm":
        factors = [*field.density_plane, *field.density_line]
    else:
        factors = list(field.density_line)
    expected = 0.25 * sum(f.detach().abs().sum().item() / f.numel() for f in factors)
    losses = field.regularization()
    assert set(losses) == {"l1"}
    assert losses["l1"].item() == pytest.approx(expected, rel=1e-5)
    losses["l1"].backward()
    assert field.density_line[0].grad is not None  # differentiable w.r.t. the factors


def _manual_tv(plane: torch.Tensor) -> float:
    p = plane.detach().double()[0]
    r, h, w = p.shape
    dh = sum(float((p[c, i + 1, j] - p[c, i, j]) ** 2) for c in range(r) for i in range(h - 1) for j in range(w))
    dw = sum(float((p[c, i, j + 1] - p[c, i, j]) ** 2) for c in range(r) for i in range(h) for j in range(w - 1))
    return 2.0 * (dh / (r * (h - 1) * w) + dw / (r * h * (w - 1)))


def test_regularization_tv_vm() -> None:
    field = make_field("vm")
    field.reg_weights.update({"tv_density": 2.0, "tv_appearance": 0.5})
    losses = field.regularization()
    assert set(losses) == {"tv_density", "tv_appearance"}
    expected_density = 2.0 * 1e-2 * sum(_manual_tv(p) for p in field.density_plane)
    expected_app = 0.5 * 1e-2 * sum(_manual_tv(p) for p in field.app_plane)
    assert losses["tv_density"].item() == pytest.approx(expected_density, rel=1e-5)
    assert losses["tv_appearance"].item() == pytest.approx(expected_app, rel=1e-5)


def test_regularization_tv_cp_has_no_planes() -> None:
    field = make_field("cp")
    field.reg_weights.update({"tv_density": 1.0, "tv_appearance": 1.0})
    assert field.regularization() == {}


def test_total_variation_manual() -> None:
    plane = torch.randn(1, 3, 4, 6)
    assert total_variation(plane).item() == pytest.approx(_manual_tv(plane), rel=1e-5)
    # hand example: a ramp of slope a along W, constant along H: TV = 2 a^2
    ramp = (0.3 * torch.arange(5.0)).expand(1, 2, 3, 5)
    assert total_variation(ramp).item() == pytest.approx(2 * 0.09, rel=1e-6)
    assert total_variation(torch.full((1, 2, 3, 3), 4.0)).item() == 0.0


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_param_groups_partition_parameters(kind: str) -> None:
    field = make_field(kind)
    groups = field.param_groups()
    assert [g["name"] for g in groups] == ["factors", "network"]
    assert [g["lr"] for g in groups] == [0.02, 1e-3]
    factors = {id(p) for p in groups[0]["params"]}
    network = {id(p) for p in groups[1]["params"]}
    assert len(factors) == len(groups[0]["params"]) and len(network) == len(groups[1]["params"])
    assert factors.isdisjoint(network)
    assert factors | network == {id(p) for p in field.parameters()}
    assert network == {id(p) for p in [*field.basis.parameters(), *field.decoder.parameters()]}
    # still a partition after the factors are replaced by resampling
    field.upsample([10, 14, 6])
    groups = field.param_groups()
    assert {id(p) for g in groups for p in g["params"]} == {id(p) for p in field.parameters()}
    assert sum(len(g["params"]) for g in groups) == len(list(field.parameters()))


def _mlp_params(in_features: int, pe: int, hidden: int = 128) -> int:
    in_dim = in_features + 3 + 2 * pe * in_features + 2 * pe * 3
    return in_dim * hidden + hidden + hidden * hidden + hidden + hidden * 3 + 3


def test_num_parameters_and_nbytes_vm() -> None:
    X, Y, Z = 6, 7, 8
    field = VMField(AABB, [X, Y, Z], density_components=[2, 3, 4], appearance_components=[5, 6, 7], appearance_dim=12, decoder_pe=2)
    plane_sizes = [X * Y, X * Z, Y * Z]  # XY-Z, XZ-Y, YZ-X
    line_sizes = [Z, Y, X]
    factors = sum(r * (p + l) for r, p, l in zip([2, 3, 4], plane_sizes, line_sizes))
    factors += sum(r * (p + l) for r, p, l in zip([5, 6, 7], plane_sizes, line_sizes))
    expected = factors + 18 * 12 + _mlp_params(12, 2)
    assert field.num_parameters() == expected
    assert field.nbytes() == 4 * expected + 4 * 6  # float32 parameters + the aabb buffer


def test_num_parameters_and_nbytes_cp_sh() -> None:
    field = CPField(AABB, [6, 7, 8], density_components=3, appearance_components=5, decoder="sh")
    expected = (3 + 5) * (6 + 7 + 8) + 5 * 27  # lines + basis; the SH decoder has no parameters
    assert field.num_parameters() == expected
    assert field.nbytes() == 4 * expected + 4 * 6
    field.double()
    assert field.nbytes() == 8 * expected + 8 * 6


def test_resolution_for_voxels_aspect() -> None:
    aabb = torch.tensor([[0.0, 0.0, 0.0], [4.0, 2.0, 1.0]])
    res = resolution_for_voxels(100_000, aabb)
    assert abs(math.prod(res) / 100_000 - 1) < 0.05, res
    assert res[0] / res[2] == pytest.approx(4.0, rel=0.05) and res[1] / res[2] == pytest.approx(2.0, rel=0.05)
    assert resolution_for_voxels(1, aabb) == [2, 2, 2]  # at least two grid points per axis


@pytest.mark.parametrize("n", [64, 128, 300])
def test_resolution_for_voxels_exact_cube(n: int) -> None:
    """n^3 voxels in a cube (TensoRF's 128^3 start, 300^3 end) must give n per axis."""
    for half in (1.0, 1.5):
        aabb = torch.tensor([[-half] * 3, [half] * 3])
        res = resolution_for_voxels(n**3, aabb)
        assert res == [n, n, n], f"resolution_for_voxels({n}**3, cube) = {res}: int() truncates {n - 1}.999... to {n - 1}"


# --- factor lookups ----------------------------------------------------------------------------


def test_sample_line_hand_interpolation() -> None:
    values = torch.tensor([[0.0, 2.0, 6.0, 7.0], [1.0, -1.0, 3.0, 0.0]])  # [R, L]
    line = values[None, :, :, None]  # [1, R, L, 1]
    coords = torch.tensor([-1.0, 1.0, -1.0 / 3.0, 0.0, 0.5])  # grid positions 0, 3, 1, 1.5, 2.25
    out = sample_line(line, coords)
    expected = torch.tensor([[0.0, 7.0, 2.0, 4.0, 6.25], [1.0, 0.0, -1.0, 1.0, 2.25]])
    torch.testing.assert_close(out, expected)
    for u in torch.rand(20) * 2 - 1:
        torch.testing.assert_close(sample_line(line, u[None])[:, 0], lerp_table(values, float(u)))


def test_sample_plane_hand_interpolation() -> None:
    # plane[0, r, h, w]; W runs along the first coordinate, H along the second
    plane = torch.arange(12.0).reshape(1, 1, 3, 4)  # value = 4 h + w
    plane = torch.cat([plane, plane**2], dim=1)
    coords = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [0.0, 0.0], [-1.0 / 3.0, 0.5]])
    # (w, h) grid positions: (0,0) (3,2) (3,0) (0,2) (1.5,1) (1,1.5)
    out = sample_plane(plane, coords)
    assert out.shape == (2, 6)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 11.0, 3.0, 8.0, 5.5, 7.0]))
    # squared channel: (w=1.5, h=1) averages 5^2 and 6^2 -> 30.5; (w=1, h=1.5) averages 5^2 and 9^2 -> 53
    torch.testing.assert_close(out[1], torch.tensor([0.0, 121.0, 9.0, 64.0, 30.5, 53.0]))
    for w_u, h_u in torch.rand(20, 2) * 2 - 1:
        rows = torch.stack([lerp_table(plane[0, :, h, :], float(w_u)) for h in range(3)], dim=-1)  # [R, H]
        torch.testing.assert_close(sample_plane(plane, torch.stack([w_u, h_u])[None])[:, 0], lerp_table(rows, float(h_u)))


def test_vm_density_matches_hand_formula() -> None:
    """sigma = distance_scale * softplus(sum_i sum_r P^i_r(a_i, b_i) v^i_r(c_i) + shift)."""
    field = VMField(AABB, [5, 4, 3], density_components=[1, 2, 1], appearance_components=1, density_shift=-1.0, distance_scale=3.0)
    x = points_inside(10)
    xn = (x - AABB[0]) / (AABB[1] - AABB[0]) * 2 - 1
    feature = torch.zeros(10)
    for plane, line, (a, b), c in zip(field.density_plane, field.density_line, PLANE_AXES, LINE_AXES):
        p, l = plane.detach()[0], line.detach()[0, :, :, 0]
        for n in range(10):
            rows = torch.stack([lerp_table(p[:, h, :], float(xn[n, a])) for h in range(p.shape[1])], dim=-1)
            feature[n] += (lerp_table(rows, float(xn[n, b])) * lerp_table(l, float(xn[n, c]))).sum()
    expected = 3.0 * F.softplus(feature - 1.0)
    torch.testing.assert_close(field.density(x).detach(), expected, atol=1e-5, rtol=1e-5)
    assert (PLANE_AXES, LINE_AXES) == (((0, 1), (0, 2), (1, 2)), (2, 1, 0))


# --- decoders ----------------------------------------------------------------------------------

SQ_PI = math.sqrt(math.pi)
C0 = 1.0 / (2.0 * SQ_PI)
C1 = math.sqrt(3.0) / (2.0 * SQ_PI)
C2_XY = math.sqrt(15.0) / (2.0 * SQ_PI)
C2_ZZ = math.sqrt(5.0) / (4.0 * SQ_PI)
C2_XX_YY = math.sqrt(15.0) / (4.0 * SQ_PI)


def test_sh_basis_known_directions() -> None:
    s = 1.0 / math.sqrt(2.0)
    dirs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [s, s, 0.0], [0.0, -s, s]])
    expected = torch.tensor(
        [
            # Plenoxels/TensoRF order: 1, -y, z, -x, xy, -yz, 3z^2-1, -xz, x^2-y^2 (with their constants)
            [C0, 0, 0, -C1, 0, 0, -C2_ZZ, 0, C2_XX_YY],
            [C0, -C1, 0, 0, 0, 0, -C2_ZZ, 0, -C2_XX_YY],
            [C0, 0, C1, 0, 0, 0, 2 * C2_ZZ, 0, 0],
            [C0, -C1 * s, 0, -C1 * s, C2_XY * 0.5, 0, -C2_ZZ, 0, 0],
            [C0, C1 * s, C1 * s, 0, 0, C2_XY * 0.5, C2_ZZ * 0.5, 0, -C2_XX_YY * 0.5],
        ]
    )
    torch.testing.assert_close(sh_basis(dirs), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("degree", [2, 3])
def test_sh_basis_orthonormal_on_sphere(degree: int) -> None:
    n = 20000  # Fibonacci sphere: near-uniform quadrature of the unit sphere
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (1 + math.sqrt(5.0)) * i
    r = torch.sqrt(1 - z * z)
    dirs = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=-1)
    y = sh_basis(dirs, degree)
    gram = (y.T @ y) * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye((degree + 1) ** 2, dtype=torch.float64), atol=2e-3, rtol=0)


def test_sh_basis_degree_three_hand_values() -> None:
    """The seven degree-3 bases at a direction off every axis, from the real-SH formulas
    (sqrt(35/(32 pi)) y (3x^2 - y^2), ...) with 3DGS's signs."""
    x, y, z = 2 / 7, 3 / 7, 6 / 7
    pi = math.pi
    expected = [
        -math.sqrt(35 / (32 * pi)) * y * (3 * x * x - y * y),
        math.sqrt(105 / (4 * pi)) * x * y * z,
        -math.sqrt(21 / (32 * pi)) * y * (4 * z * z - x * x - y * y),
        math.sqrt(7 / (16 * pi)) * z * (2 * z * z - 3 * x * x - 3 * y * y),
        -math.sqrt(21 / (32 * pi)) * x * (4 * z * z - x * x - y * y),
        math.sqrt(105 / (16 * pi)) * z * (x * x - y * y),
        -math.sqrt(35 / (32 * pi)) * x * (x * x - 3 * y * y),
    ]
    basis = sh_basis(torch.tensor([[x, y, z]], dtype=torch.float64), 3)
    assert basis.shape == (1, 16)
    torch.testing.assert_close(basis[0, 9:], torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(basis[0, :9], sh_basis(torch.tensor([[x, y, z]], dtype=torch.float64))[0])
    with pytest.raises(ValueError, match="degree must be 0 to 3"):
        sh_basis(torch.zeros(1, 3), 4)


def test_sh_decoder_hand_value() -> None:
    features = torch.zeros(2, 27)
    features[:, 0] = 1.0  # red: DC
    features[:, 9 + 2] = 0.5  # green: z coefficient
    features[:, 18 + 3] = 2.0  # blue: coefficient of the -x basis
    dirs = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    rgb = SHDecoder()(features, dirs)
    expected = torch.tensor([[C0 + 0.5, 0.5 * C1 + 0.5, 0.5], [C0 + 0.5, 0.5, 0.0]])  # blue at +x: relu(2 * -C1 + 0.5) = 0
    torch.testing.assert_close(rgb, expected)


def test_positional_encoding_layout() -> None:
    values = torch.tensor([[0.3, -1.2], [2.0, 0.1]])
    pe = positional_encoding(values, 3)
    assert pe.shape == (2, 12)
    for n in range(2):
        sines = [math.sin(values[n, c].item() * 2**k) for c in range(2) for k in range(3)]
        cosines = [math.cos(values[n, c].item() * 2**k) for c in range(2) for k in range(3)]
        torch.testing.assert_close(pe[n], torch.tensor(sines + cosines))


def test_mlp_decoder_input_layout() -> None:
    decoder = MLPDecoder(in_features=4, feature_pe=2, view_pe=3)
    assert decoder.mlp[0].in_features == 4 + 3 + 2 * 2 * 4 + 2 * 3 * 3
    assert torch.equal(decoder.mlp[-1].bias, torch.zeros(3))
    seen = {}

    def record(module, inputs, output) -> None:
        seen.setdefault("x", inputs[0].clone())

    decoder.mlp[0].register_forward_hook(record)
    features, dirs = torch.randn(5, 4), unit_dirs(5)
    rgb = decoder(features, dirs)
    expected = torch.cat([features, dirs, positional_encoding(features, 2), positional_encoding(dirs, 3)], dim=-1)
    torch.testing.assert_close(seen["x"], expected)
    assert ((rgb > 0) & (rgb < 1)).all()
    torch.testing.assert_close(rgb, torch.sigmoid(decoder.mlp(expected)))


def test_mlp_decoder_without_pe() -> None:
    decoder = MLPDecoder(in_features=6, feature_pe=0, view_pe=0)
    assert decoder.mlp[0].in_features == 9
    features, dirs = torch.randn(3, 6), unit_dirs(3)
    torch.testing.assert_close(decoder(features, dirs), torch.sigmoid(decoder.mlp(torch.cat([features, dirs], -1))))


def test_sh_decoder_needs_27_features() -> None:
    with pytest.raises(ValueError, match="27"):
        VMField(AABB, RESOLUTION, 2, 2, appearance_dim=12, decoder="sh")
    with pytest.raises(ValueError, match="unknown decoder"):
        VMField(AABB, RESOLUTION, 2, 2, decoder="siren")
