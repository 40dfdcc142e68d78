"""The Gaussian-mixture op (`gaussian_mix`): the native kernels (C++ here; CUDA with a GPU) against
the pure-torch reference, values and every gradient, and the reference against a brute-force sum
over all Gaussians (no grid)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch
from conftest import requires_cuda

from cuda_ext import gaussian_mix, reference, reference_forced, status
from cuda_ext._backend import native

DEVICES = ["cpu", pytest.param("cuda", marks=requires_cuda)]
CUTOFF = 3.0
#: the inputs gaussian_mix differentiates, in argument order
FLOAT_INPUTS = ("points", "means", "precision_factors", "peaks", "features")


@pytest.fixture(autouse=True, scope="module")
def _native_built() -> None:
    if native() is None:
        pytest.fail(f"the native extension did not build: {status()['error']}")


@dataclass(frozen=True)
class Mix:
    """The arguments of one `gaussian_mix` call."""

    points: torch.Tensor  # [S, 3]
    means: torch.Tensor  # [N, 3]
    precision_factors: torch.Tensor  # [N, 3, 3]
    peaks: torch.Tensor  # [N]
    features: torch.Tensor  # [N, F]
    cell_start: torch.Tensor  # [C + 1] int64
    cell_gaussians: torch.Tensor  # [L] int32
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cell_size: float = 0.25
    resolution: tuple[int, int, int] = (4, 4, 4)
    cutoff: float = CUTOFF

    def floats(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in FLOAT_INPUTS]

    def grid(self) -> tuple:
        return (self.cell_start, self.cell_gaussians, self.origin, self.cell_size, self.resolution, self.cutoff)

    def to(self, device: str, dtype: torch.dtype | None = None) -> Mix:
        moved = {name: t.to(device=device, dtype=dtype or t.dtype) for name, t in zip(FLOAT_INPUTS, self.floats())}
        return replace(self, **moved, cell_start=self.cell_start.to(device), cell_gaussians=self.cell_gaussians.to(device))


def random_precision_factors(count: int, sigma: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
    """P = diag(1 / sigma) R: `[count, 3, 3]`, random rotations R and standard deviations in `sigma`."""
    rotations, _ = torch.linalg.qr(torch.randn(count, 3, 3, generator=generator, dtype=torch.float64))
    scales = sigma[0] + (sigma[1] - sigma[0]) * torch.rand(count, 3, generator=generator, dtype=torch.float64)
    return (rotations / scales[:, :, None]).contiguous()


def half_extents(precision_factors: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Half box `[N, 3]` of each cutoff ellipsoid |P d| <= cutoff: cutoff times the norms of P^-1's rows."""
    return cutoff * torch.linalg.inv(precision_factors).norm(dim=-1)


def brute_force_lists(mix: Mix) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell lists (cell_start, cell_gaussians) of mix's grid listing every Gaussian in every cell its
    cutoff box touches, found by testing every cell against every Gaussian."""
    origin, size = torch.tensor(mix.origin, dtype=torch.float64), mix.cell_size
    extent = half_extents(mix.precision_factors.double(), mix.cutoff)
    low, high = mix.means.double() - extent, mix.means.double() + extent
    lists = []
    for i in range(mix.resolution[0]):
        for j in range(mix.resolution[1]):
            for k in range(mix.resolution[2]):
                cell_low = origin + size * torch.tensor([i, j, k], dtype=torch.float64)
                touches = ((low <= cell_low + size) & (high >= cell_low)).all(dim=-1)
                lists.append(touches.nonzero()[:, 0])
    return csr(lists)


def csr(lists: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cell index lists as (cell_start [C + 1] int64, cell_gaussians [L] int32)."""
    start = torch.zeros(len(lists) + 1, dtype=torch.int64)
    start[1:] = torch.tensor([len(cell) for cell in lists], dtype=torch.int64).cumsum(0)
    gaussians = torch.cat(lists).int() if lists else torch.zeros(0, dtype=torch.int32)
    return start, gaussians


def points_near(means: torch.Tensor, precision_factors: torch.Tensor, per_gaussian: int, generator: torch.Generator) -> torch.Tensor:
    """Points `[N * per_gaussian, 3]` at mean + P^-1 u, |u| up to 1.2 cutoff: in and out of each cutoff."""
    directions = torch.randn(means.shape[0], per_gaussian, 3, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    radii = 1.2 * CUTOFF * torch.rand(means.shape[0], per_gaussian, 1, generator=generator, dtype=torch.float64)
    offsets = torch.einsum("nij,nkj->nki", torch.linalg.inv(precision_factors), directions * radii)
    return (means[:, None] + offsets).reshape(-1, 3)


def make_mix(
    count: int,
    channels: int,
    seed: int,
    sigma: tuple[float, float] = (0.04, 0.12),
    spread: tuple[float, float] = (0.1, 0.9),
    thin: bool = False,
    random_points: int = 300,
) -> Mix:
    """`count` Gaussians with means in `spread`^3, their lists by brute force, points uniform in the
    grid [0, 1]^3 and near every Gaussian (float64). `thin`: each precision factor's first row is
    1e3 times the others (flat discs, a thousand times thinner than wide)."""
    g = torch.Generator().manual_seed(seed)
    means = spread[0] + (spread[1] - spread[0]) * torch.rand(count, 3, generator=g, dtype=torch.float64)
    precision_factors = random_precision_factors(count, sigma, g)
    if thin:
        precision_factors[:, 0] *= 1e3
    peaks = 0.2 + torch.rand(count, generator=g, dtype=torch.float64)
    features = torch.randn(count, channels, generator=g, dtype=torch.float64)
    points = torch.cat([torch.rand(random_points, 3, generator=g, dtype=torch.float64), points_near(means, precision_factors, 8, g)])
    mix = Mix(points, means, precision_factors, peaks, features, torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int32))
    start, gaussians = brute_force_lists(mix)
    return replace(mix, cell_start=start, cell_gaussians=gaussians)


def with_empty_cells(mix: Mix, keep: Callable[[int], bool]) -> Mix:
    """`mix` with the lists of the cells c where not keep(c) emptied."""
    start = mix.cell_start.tolist()
    lists = [mix.cell_gaussians[start[c] : start[c + 1]] if keep(c) else mix.cell_gaussians[:0] for c in range(len(start) - 1)]
    cell_start, cell_gaussians = csr(lists)
    return replace(mix, cell_start=cell_start, cell_gaussians=cell_gaussians)


def exactly_at_cutoff(dtype: torch.dtype = torch.float64) -> Mix:
    """One axis-aligned Gaussian (P = diag(2, 4, 0.5), mean (0.5, 0.5, 0.5), peak 0.75, features
    (1, -2)) and points where every step is exact in `dtype`: four with q = 9 = cutoff^2, then one
    with x an ulp beyond the first, one farther out, one inside (q = 2.25)."""
    mean = torch.tensor([[0.5, 0.5, 0.5]], dtype=dtype)
    points = mean + torch.tensor([[1.5, 0, 0], [0, -0.75, 0], [0, 0, 6.0], [-1.5, 0, 0], [1.5, 0, 0], [0, 0, -6.25], [0.5, 0.25, 1.0]],
                                 dtype=dtype)  # fmt: skip
    points[4, 0] = torch.nextafter(points[4, 0], torch.tensor(math.inf, dtype=dtype))
    start, gaussians = csr([torch.zeros(1, dtype=torch.int64)])
    precision_factors = torch.diag(torch.tensor([2.0, 4.0, 0.5], dtype=dtype))[None]
    return Mix(points, mean, precision_factors, torch.tensor([0.75], dtype=dtype), torch.tensor([[1.0, -2.0]], dtype=dtype), start,
               gaussians, origin=(-8.0, -8.0, -8.0), cell_size=16.0, resolution=(1, 1, 1))  # fmt: skip


def with_points_outside(mix: Mix) -> Mix:
    """`mix` with its points spread over twice the grid's size around it, and two NaN points."""
    return replace(mix, points=torch.cat([mix.points * 2 - 0.5, torch.full((2, 3), float("nan"), dtype=mix.points.dtype)]))


CASES: dict[str, Callable[[], Mix]] = {
    "some empty cells": lambda: with_empty_cells(make_mix(40, 5, seed=1), lambda c: c % 3 != 0),
    "all cells empty": lambda: with_empty_cells(make_mix(10, 3, seed=2), lambda c: False),
    "one Gaussian": lambda: make_mix(1, 4, seed=3, sigma=(0.1, 0.3)),
    "many overlapping": lambda: make_mix(60, 6, seed=4, sigma=(0.2, 0.4), spread=(0.4, 0.6)),
    "thin Gaussians": lambda: make_mix(20, 3, seed=5, sigma=(0.1, 0.2), thin=True),
    "points outside the grid": lambda: with_points_outside(make_mix(30, 2, seed=6)),
    "no features": lambda: make_mix(25, 0, seed=7),
    "exactly at the cutoff": exactly_at_cutoff,
}


def run(
    mix: Mix, device: str, native_path: bool, wanted: tuple[str, ...] = FLOAT_INPUTS
) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """(density, mixed) and the gradients of the `wanted` inputs for fixed random upstream
    gradients, by the native kernels or the reference (forced), on the CPU."""
    mix = mix.to(device)
    inputs = {name: t.clone().requires_grad_(name in wanted) for name, t in zip(FLOAT_INPUTS, mix.floats())}
    with reference_forced(not native_path):
        density, mixed = gaussian_mix(*inputs.values(), *mix.grid())
    if not wanted:
        return [density.cpu(), mixed.cpu()], {}
    assert any(type(t.grad_fn).__name__ == "_GaussianMixBackward" for t in (density, mixed)) == native_path
    g = torch.Generator().manual_seed(11)
    upstream = [torch.randn(t.shape, generator=g, dtype=t.dtype).to(device) for t in (density, mixed)]
    differentiable = [(t, u) for t, u in zip((density, mixed), upstream) if t.requires_grad]  # the reference's density needs no features
    outputs, upstream = zip(*differentiable)
    grads = torch.autograd.grad(outputs, [inputs[name] for name in wanted], upstream)
    return [density.detach().cpu(), mixed.detach().cpu()], {name: grad.cpu() for name, grad in zip(wanted, grads)}


def assert_close_scaled(have: torch.Tensor, want: torch.Tensor, rtol: float = 1e-10) -> None:
    """Equal to `rtol` of the entry, or of the largest entry where terms cancel."""
    torch.testing.assert_close(have, want, rtol=rtol, atol=rtol * float(want.detach().abs().max()) if want.numel() else 0.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_native_matches_reference(device: str, case: str) -> None:
    mix = CASES[case]()
    outputs, grads = run(mix, device, native_path=True)
    want_outputs, want_grads = run(mix, device, native_path=False)
    assert outputs[0].shape == (mix.points.shape[0],) and outputs[1].shape == (mix.points.shape[0], mix.features.shape[1])
    for have, want in zip(outputs, want_outputs):
        assert_close_scaled(have, want)
    for name in FLOAT_INPUTS:
        assert grads[name].shape == getattr(mix, name).shape
        assert_close_scaled(grads[name], want_grads[name])


def test_cases_cover_what_they_say() -> None:
    """The cases' inputs have the property they are named after (so the comparisons above mean something)."""
    mixes = {name: make() for name, make in CASES.items()}
    density = {name: run(mix, "cpu", native_path=False, wanted=())[0][0] for name, mix in mixes.items()}
    per_cell = mixes["some empty cells"].cell_start.diff()
    assert (per_cell == 0).any() and (per_cell > 0).any()
    assert mixes["all cells empty"].cell_gaussians.numel() == 0 and (density["all cells empty"] == 0).all()
    assert (density["one Gaussian"] > 0).sum() > 10
    thinnest = CUTOFF / torch.linalg.svdvals(mixes["thin Gaussians"].precision_factors).max()
    assert (density["thin Gaussians"] > 0).sum() > 50 and thinnest < 1e-3
    outside = mixes["points outside the grid"].points
    beyond = ~((outside >= 0) & (outside < 1)).all(dim=-1)
    assert beyond.sum() > 100 and (density["points outside the grid"][beyond] == 0).all()
    assert (density["points outside the grid"][~beyond] > 0).any()
    overlapping = mixes["many overlapping"]
    q = (torch.einsum("nij,snj->sni", overlapping.precision_factors, overlapping.points[:, None] - overlapping.means) ** 2).sum(-1)
    assert int((q <= CUTOFF**2).sum(dim=1).max()) >= 30  # Gaussians within the cutoff of one point


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("native_path", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samples_exactly_at_the_cutoff_count(device: str, native_path: bool, dtype: torch.dtype) -> None:
    """q <= cutoff^2 is in: a point on the cutoff ellipsoid weighs peak exp(-cutoff^2 / 2); one ulp beyond, nothing."""
    mix = exactly_at_cutoff(dtype)
    (density, mixed), _ = run(mix, device, native_path, wanted=())
    on_edge = 0.75 * math.exp(-4.5)
    inside = 0.75 * math.exp(-0.5 * (1.0 + 1.0 + 0.25))
    want = torch.tensor([on_edge] * 4 + [0.0, 0.0, inside], dtype=torch.float64)
    torch.testing.assert_close(density.double(), want, rtol=1e-6, atol=0)
    torch.testing.assert_close(mixed.double(), want[:, None] * torch.tensor([1.0, -2.0], dtype=torch.float64), rtol=1e-6, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_matches_reference(device: str) -> None:
    mix = CASES["many overlapping"]().to("cpu", torch.float32)
    outputs, grads = run(mix, device, native_path=True)
    want_outputs, want_grads = run(mix, device, native_path=False)
    assert outputs[0].dtype == torch.float32 and grads["means"].dtype == torch.float32
    for have, want in zip([*outputs, *grads.values()], [*want_outputs, *want_grads.values()]):
        assert_close_scaled(have, want, rtol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("wanted", [("points",), ("features",), ("means", "peaks"), ("precision_factors", "points")])
def test_only_the_gradients_asked_for(device: str, wanted: tuple[str, ...]) -> None:
    mix = CASES["some empty cells"]()
    _, grads = run(mix, device, native_path=True, wanted=wanted)
    _, want = run(mix, device, native_path=False, wanted=wanted)
    assert list(grads) == list(wanted)
    for name in wanted:
        assert_close_scaled(grads[name], want[name])


@pytest.mark.parametrize("threads", [1, 3])
def test_cpu_backward_sums_its_parts(threads: int) -> None:
    """Enough samples (4096 a part at least) for 3 parts, each adding into its own gradient buffers
    summed at the end, with 3 threads; a single part with 1."""
    mix = make_mix(30, 4, seed=8, random_points=14_000)
    assert mix.points.shape[0] >= 3 * 4096
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _, grads = run(mix, "cpu", native_path=True)
    finally:
        torch.set_num_threads(previous)
    _, want = run(mix, "cpu", native_path=False)
    for name in FLOAT_INPUTS:
        assert_close_scaled(grads[name], want[name])


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_native(device: str) -> None:
    """The grid lists all 3 Gaussians in each of its 8 cells, so that a point crossing a cell boundary
    changes nothing; no pair lies within 1e-3 of the cutoff (where the weight jumps to 0)."""
    g = torch.Generator().manual_seed(13)
    means = 0.3 + 0.4 * torch.rand(3, 3, generator=g, dtype=torch.float64)
    precision_factors = random_precision_factors(3, (0.15, 0.3), g)
    points = torch.rand(12, 3, generator=g, dtype=torch.float64)
    start, gaussians = csr([torch.arange(3)] * 8)
    cutoff = 2.0
    q = (torch.einsum("nij,snj->sni", precision_factors, points[:, None] - means) ** 2).sum(-1)
    assert ((q - cutoff**2).abs() > 1e-3).all() and (q < cutoff**2).any() and (q > cutoff**2).any()
    inputs = [t.to(device).requires_grad_() for t in (points, means, precision_factors, 0.5 + torch.rand(3, generator=g, dtype=torch.float64),
                                                      torch.randn(3, 2, generator=g, dtype=torch.float64))]  # fmt: skip
    grid = (start.to(device), gaussians.to(device), (0.0, 0.0, 0.0), 0.5, (2, 2, 2), cutoff)
    assert type(gaussian_mix(*inputs, *grid)[0].grad_fn).__name__ == "_GaussianMixBackward"
    assert torch.autograd.gradcheck(lambda *floats: gaussian_mix(*floats, *grid), inputs)


def brute_force_mix(mix: Mix) -> tuple[torch.Tensor, torch.Tensor]:
    """density [S], mixed [S, F] by a loop over every Gaussian (no grid; every point must lie in it)."""
    density = mix.points.new_zeros(mix.points.shape[0])
    mixed = mix.points.new_zeros(mix.points.shape[0], mix.features.shape[1])
    for i in range(mix.means.shape[0]):
        u = (mix.points - mix.means[i]) @ mix.precision_factors[i].T
        q = (u * u).sum(-1)
        weight = torch.where(q <= mix.cutoff**2, mix.peaks[i] * torch.exp(-0.5 * q), torch.zeros_like(q))
        density = density + weight
        mixed = mixed + weight[:, None] * mix.features[i]
    return density, mixed


def test_reference_matches_brute_force() -> None:
    """With every Gaussian listed in every cell its cutoff box touches, the grid changes nothing."""
    mix = make_mix(25, 3, seed=9, sigma=(0.05, 0.2), spread=(0.0, 1.0))
    assert ((mix.points >= 0) & (mix.points < 1)).all(dim=-1).sum() > 300
    mix = replace(mix, points=mix.points[((mix.points >= 0) & (mix.points < 1)).all(dim=-1)])
    inputs = [t.clone().requires_grad_() for t in mix.floats()]
    mix = replace(mix, **dict(zip(FLOAT_INPUTS, inputs)))
    density, mixed = reference.gaussian_mix(*inputs, *mix.grid())
    want_density, want_mixed = brute_force_mix(mix)
    assert (want_density > 0).sum() > 200
    assert_close_scaled(density, want_density)
    assert_close_scaled(mixed, want_mixed)
    g = torch.Generator().manual_seed(14)
    upstream = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in (density, mixed)]
    grads = torch.autograd.grad([density, mixed], inputs, upstream)
    want_grads = torch.autograd.grad([want_density, want_mixed], inputs, upstream)
    for have, want in zip(grads, want_grads):
        assert_close_scaled(have, want)


def _arguments() -> dict:
    mix = CASES["one Gaussian"]()
    return {"points": mix.points, "means": mix.means, "precision_factors": mix.precision_factors, "peaks": mix.peaks,
            "features": mix.features, "cell_start": mix.cell_start, "cell_gaussians": mix.cell_gaussians, "origin": mix.origin,
            "cell_size": mix.cell_size, "resolution": mix.resolution, "cutoff": mix.cutoff}  # fmt: skip


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "cell_gaussians": a["cell_gaussians"].long()}, TypeError, "cell_gaussians must be torch.int32"),
        (lambda a: {**a, "cell_start": a["cell_start"][1:]}, ValueError, "cell_start must have shape [65]"),
        (lambda a: {**a, "cell_start": a["cell_start"].int()}, TypeError, "cell_start must be torch.int64"),
        (lambda a: {**a, "means": a["means"].float()}, TypeError, "means must be torch.float64"),
        (lambda a: {**a, "precision_factors": a["precision_factors"][:, :2]}, ValueError, "precision_factors must have shape [1, 3, 3]"),
        (lambda a: {**a, "features": a["features"].t()}, ValueError, "features must have shape [1, *]"),
        (lambda a: {**a, "resolution": (4, 4)}, ValueError, "resolution must be 3 positive integers"),
        (lambda a: {**a, "cutoff": 0.0}, ValueError, "cutoff must be a positive number"),
        (lambda a: {**a, "cell_gaussians": a["cell_gaussians"] + 1}, ValueError, "cell_gaussians holds indices outside [0, 1)"),
    ],
)  # fmt: skip
def test_rejects_bad_arguments(change, error, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORFIELDS_DEBUG", "1")  # the index range is a value check
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*").replace(")", r"\)")):
        gaussian_mix(**change(_arguments()))


def test_native_rejects_mismatched_shapes_below_python() -> None:
    """The C++ layer checks too (it is reachable without the Python checks)."""
    a = _arguments()
    floats = [a[name] for name in FLOAT_INPUTS]
    grid = [list(a["origin"]), a["cell_size"], list(a["resolution"]), a["cutoff"]]
    with pytest.raises(RuntimeError, match="cell_start must be"):
        native().gaussian_mix_fwd(*floats, a["cell_start"][1:].contiguous(), a["cell_gaussians"], *grid)
    with pytest.raises(RuntimeError, match="cell_gaussians must be Int"):
        native().gaussian_mix_fwd(*floats, a["cell_start"], a["cell_gaussians"].long(), *grid)
    density = torch.zeros(a["points"].shape[0], dtype=torch.float64)
    with pytest.raises(RuntimeError, match="grad_mixed must be"):
        native().gaussian_mix_bwd(*floats, a["cell_start"], a["cell_gaussians"], *grid, density, torch.zeros(1, 4, dtype=torch.float64),
                                  [True] * 5)  # fmt: skip
