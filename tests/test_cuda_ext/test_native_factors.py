"""The native factor-sampling kernels (VM, CP) against the grid_sample reference (C++ here; CUDA with a GPU)."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_native_matches_reference, requires_cuda

from cuda_ext import cp_sample, reference, status, vm_sample
from cuda_ext._backend import native
from fields import CPField, VMField

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
#: (plane [R, H, W], line length L) per VM pair: odd, non-square, resolution 2, R = 1
VM_SHAPES = [
    [((3, 5, 7), 9), ((2, 2, 3), 2), ((4, 6, 2), 5)],
    [((1, 2, 2), 2), ((1, 2, 2), 2), ((1, 2, 2), 2)],
    [((5, 13, 11), 17), ((1, 13, 9), 11), ((2, 11, 9), 13)],
]


@pytest.fixture(autouse=True, scope="module")
def _native_built() -> None:
    if native() is None:
        pytest.fail(f"the native extension did not build: {status()['error']}")


def make_points(count: int, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    """Random points `[count, 3]` in [-1.1, 1.1] (some outside the box), the first ones on its faces,
    edges and corners and exactly at grid points' normalized positions."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(count, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1
    special = torch.tensor([-1.0, 1.0, 0.0, -1.0 - 1e-6, 1.0 + 1e-6, 0.5, -0.5, 1.0 / 3.0], dtype=torch.float64)
    picks = special[torch.randint(0, len(special), (min(count, 200), 3), generator=g)]
    keep = torch.rand(picks.shape, generator=g) < 0.5  # mix special and random coordinates
    points[: picks.shape[0]] = torch.where(keep, picks, points[: picks.shape[0]])
    return points.to(dtype).to(device)


def make_vm(shapes, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> tuple[list, list]:
    g = torch.Generator().manual_seed(seed)
    planes = [torch.randn(*plane, generator=g, dtype=dtype).to(device).requires_grad_() for plane, _ in shapes]
    lines = [torch.randn(plane[0], length, generator=g, dtype=dtype).to(device).requires_grad_() for plane, length in shapes]
    return planes, lines


def make_cp(rank: int, lengths: tuple[int, int, int], seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> list:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(rank, length, generator=g, dtype=dtype).to(device).requires_grad_() for length in lengths]


def assert_same_with_grads(expected: torch.Tensor, got: torch.Tensor, factors: list[torch.Tensor], seed: int) -> None:
    """Values and gradients w.r.t. `factors` (for a random output gradient) agree."""
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed), dtype=expected.dtype).to(expected.device)
    want = torch.autograd.grad(expected, factors, grad_out)
    have = torch.autograd.grad(got, factors, grad_out)
    for i, (w, h) in enumerate(zip(want, have)):
        torch.testing.assert_close(h, w, rtol=1e-5, atol=1e-4, msg=lambda m, i=i: f"gradient of factor {i}: {m}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shapes", VM_SHAPES)
@pytest.mark.parametrize("reduce", [False, True])
@pytest.mark.parametrize("count", [0, 1, 777])
def test_vm_sample_matches_reference(device: str, shapes, reduce: bool, count: int) -> None:
    planes, lines = make_vm(shapes, seed=1, device=device)
    xn = make_points(count, seed=2, device=device)
    expected = reference.vm_sample(planes, lines, xn, reduce)
    got = vm_sample(planes, lines, xn, reduce)
    assert_same_with_grads(expected, got, planes + lines, seed=3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lengths", [(7, 5, 9), (2, 2, 2), (13, 2, 6)])
@pytest.mark.parametrize("rank", [1, 6])
@pytest.mark.parametrize("reduce", [False, True])
@pytest.mark.parametrize("count", [0, 777])
def test_cp_sample_matches_reference(device: str, lengths, rank: int, reduce: bool, count: int) -> None:
    lines = make_cp(rank, lengths, seed=4, device=device)
    xn = make_points(count, seed=5, device=device)
    expected = reference.cp_sample(lines, xn, reduce)
    got = cp_sample(lines, xn, reduce)
    assert_same_with_grads(expected, got, lines, seed=6)


def test_vm_sample_hand_values() -> None:
    """Grid points return stored values; midpoints average; outside reads zero (grid_sample's zeros
    padding, so half a cell outside blends the border value with zero)."""
    plane = torch.arange(6.0).reshape(1, 2, 3)  # value = 3 h + w
    line = torch.tensor([[1.0, 10.0]])
    zeros_plane, zeros_line = torch.zeros(0, 2, 2), torch.zeros(0, 2)
    planes, lines = [plane, zeros_plane, zeros_plane], [line, zeros_line, zeros_line]
    # pair 0: plane at (x along W, y along H), line at z
    xn = torch.tensor(
        [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 1.0, -1.0], [1.5, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 0.0, -3.0]]
    )
    got = vm_sample(planes, lines, xn, reduce=False)
    # (w, h, l) positions: (0, 0, 0), (2, 1, 1), (1, 0.5, 0.5), (1.5, 1, 0), (2.5, 0.5, 0.5), outside in w, outside in l
    expected = torch.tensor([[0.0 * 1.0, 5.0 * 10.0, 2.5 * 5.5, 4.5 * 1.0, 0.25 * (2.0 + 5.0) * 5.5, 0.0, 0.0]])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(vm_sample(planes, lines, xn, reduce=True), expected[0])


@pytest.mark.parametrize("reduce", [False, True])
def test_vm_sample_gradcheck_float64(reduce: bool) -> None:
    planes, lines = make_vm(VM_SHAPES[0], seed=7, dtype=torch.float64)
    xn = make_points(40, seed=8, dtype=torch.float64)
    xn = xn.clamp(-0.999, 0.999)  # no kinks at grid points (finite differences)
    xn = torch.where((xn * 60).frac().abs() < 1e-3, xn + 1e-3, xn)
    assert torch.autograd.gradcheck(lambda *f: vm_sample(f[:3], f[3:], xn, reduce), (*planes, *lines))


@pytest.mark.parametrize("reduce", [False, True])
def test_cp_sample_gradcheck_float64(reduce: bool) -> None:
    lines = make_cp(3, (5, 4, 6), seed=9, dtype=torch.float64)
    xn = make_points(40, seed=10, dtype=torch.float64).clamp(-0.999, 0.999)
    assert torch.autograd.gradcheck(lambda *f: cp_sample(f, xn, reduce), tuple(lines))


def test_factor_views_of_parameters_get_gradients() -> None:
    """Planes and lines passed as views of `[1, R, H, W]` / `[1, R, L, 1]` parameters, as the fields do."""
    plane = torch.nn.Parameter(torch.randn(1, 3, 4, 5))
    line = torch.nn.Parameter(torch.randn(1, 3, 6, 1))
    others = [torch.randn(2, 4, 4), torch.randn(2, 4)]
    out = vm_sample([plane[0], others[0], others[0]], [line[0, :, :, 0], others[1], others[1]], make_points(50, 11), True)
    out.sum().backward()
    assert plane.grad is not None and plane.grad.shape == plane.shape and plane.grad.abs().sum() > 0
    assert line.grad is not None and line.grad.shape == line.shape and line.grad.abs().sum() > 0


def random_points(count: int, seed: int, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
    """Random points `[count, 3]` in [-1.1, 1.1] requiring a gradient: off the grid lines, where the
    gradient w.r.t. the points jumps and one rounding could pick either side."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(count, 3, generator=g, dtype=torch.float64) * 2.2 - 1.1).to(dtype).to(device).requires_grad_()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shapes", VM_SHAPES)
@pytest.mark.parametrize("reduce", [False, True])
def test_vm_sample_point_gradients_match_reference(device: str, shapes, reduce: bool) -> None:
    """Pose refinement differentiates the field w.r.t. the sample points: the native gradient w.r.t.
    xn (alone, and together with the factors') is grid_sample's, inside and just outside the box."""
    planes, lines = make_vm(shapes, seed=21, device=device)
    xn = random_points(555, seed=22, device=device)
    for inputs, seed in (([xn], 23), ([xn, *planes, *lines], 24)):
        assert_same_with_grads(reference.vm_sample(planes, lines, xn, reduce), vm_sample(planes, lines, xn, reduce), inputs, seed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lengths", [(7, 5, 9), (2, 2, 2), (13, 2, 6)])
@pytest.mark.parametrize("reduce", [False, True])
def test_cp_sample_point_gradients_match_reference(device: str, lengths, reduce: bool) -> None:
    lines = make_cp(5, lengths, seed=25, device=device)
    xn = random_points(555, seed=26, device=device)
    for inputs, seed in (([xn], 27), ([xn, *lines], 28)):
        assert_same_with_grads(reference.cp_sample(lines, xn, reduce), cp_sample(lines, xn, reduce), inputs, seed)


@pytest.mark.parametrize("reduce", [False, True])
def test_point_gradients_gradcheck_float64(reduce: bool) -> None:
    """Finite differences w.r.t. the points, VM and CP, with the factors' gradients at the same time."""
    planes, lines = make_vm(VM_SHAPES[0], seed=29, dtype=torch.float64)
    cp_lines = make_cp(3, (5, 4, 6), seed=30, dtype=torch.float64)
    xn = random_points(30, seed=31, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, *f: vm_sample(f[:3], f[3:], x, reduce), (xn, *planes, *lines))
    assert torch.autograd.gradcheck(lambda x, *f: cp_sample(f, x, reduce), (xn, *cp_lines))


def _vm_args() -> dict:
    planes, lines = make_vm(VM_SHAPES[0], seed=14)
    return {"planes": planes, "lines": lines, "xn": make_points(8, seed=15), "reduce": False}


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "xn": a["xn"].half()}, TypeError, "xn must be torch.float32"),
        (lambda a: {**a, "xn": a["xn"][:, :2]}, ValueError, "xn must have shape [*, 3]"),
        (lambda a: {**a, "xn": a["xn"].t().contiguous().t()}, ValueError, "xn must be contiguous"),
        (lambda a: {**a, "xn": a["xn"].tolist()}, TypeError, "xn must be a torch.Tensor"),
        (lambda a: {**a, "planes": [p.double() for p in a["planes"]]}, TypeError, "planes[0] must be torch.float32"),
        (lambda a: {**a, "planes": [a["planes"][0], a["planes"][1][None, None], a["planes"][2]]}, ValueError, "planes[1] must have shape [*, *, *]"),
        (lambda a: {**a, "planes": [a["planes"][0], a["planes"][1], a["planes"][2].transpose(1, 2)]}, ValueError, "planes[2] must be contiguous"),
        (lambda a: {**a, "planes": a["planes"][:2]}, ValueError, "planes must be a sequence of 3 tensors"),
        (lambda a: {**a, "lines": [a["lines"][0][:, None], *a["lines"][1:]]}, ValueError, "lines[0] must have shape [*, *]"),
        (lambda a: {**a, "lines": [a["lines"][0][:1], *a["lines"][1:]]}, ValueError, "planes[0] has 3 components but lines[0] has 1"),
    ],
)  # fmt: skip
def test_vm_sample_rejects_bad_arguments(change, error, needle: str) -> None:
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*")):
        vm_sample(**change(_vm_args()))


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda lines, xn: (lines, xn.double()), TypeError, "lines[0] must be torch.float64"),
        (lambda lines, xn: (lines[:2], xn), ValueError, "lines must be a sequence of 3 tensors"),
        (lambda lines, xn: ([lines[0], lines[1][:1], lines[2]], xn), ValueError, "lines must have the same number of components"),
        (lambda lines, xn: ([lines[0], lines[1], lines[2].t()], xn), ValueError, "lines[2] must be contiguous"),
    ],
)
def test_cp_sample_rejects_bad_arguments(change, error, needle: str) -> None:
    lines, xn = change(make_cp(3, (4, 5, 6), seed=16), make_points(8, seed=17))
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]")):
        cp_sample(lines, xn, True)


def test_native_rejects_mismatched_shapes_below_python() -> None:
    """The C++ layer checks too (it is reachable without the Python checks)."""
    planes, lines = make_vm(VM_SHAPES[0], seed=18)
    planes, lines = [p.detach() for p in planes], [line.detach() for line in lines]
    with pytest.raises(RuntimeError, match="different ranks"):
        native().vm_sample_fwd(planes, [lines[1], lines[0], lines[2]], make_points(4, seed=19), False)
    with pytest.raises(RuntimeError, match="grad_out"):
        native().vm_sample_bwd(planes, lines, make_points(4, seed=19), torch.zeros(5), True)


@pytest.mark.parametrize("kind", ["vm", "cp"])
def test_fields_render_the_same_with_native_and_reference(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    aabb = torch.tensor([[-1.0, -1.5, -0.5], [1.0, 1.5, 0.5]])
    if kind == "vm":
        field = VMField(aabb, [9, 13, 5], density_components=[2, 3, 4], appearance_components=[3, 2, 5], init_scale=0.5, density_shift=0.0)
    else:
        field = CPField(aabb, [9, 13, 5], density_components=4, appearance_components=6, init_scale=0.8, density_shift=0.0)
    x = torch.rand(600, 3) * (aabb[1] - aabb[0]) * 1.1 + aabb[0] * 1.1
    d = torch.nn.functional.normalize(torch.randn(600, 3), dim=-1)
    assert_native_matches_reference(field, x, d, monkeypatch)
