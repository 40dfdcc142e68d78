"""The Strivec tri-vector ops (covering-tensor lookup, tri-vector sampling): the native kernels
(C++ here; CUDA with a GPU) and the pure-torch reference against a brute-force search and each other."""

from __future__ import annotations

import pytest
import torch
from conftest import brute_force_neighbors, requires_cuda

from cuda_ext import reference, status, trivec_neighbors, trivec_sample
from cuda_ext._backend import native
from fields.strivec.index import build_table, lookup_grid

IMPLEMENTATIONS = ["reference", "cpu", pytest.param("cuda", marks=requires_cuda)]
BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
HALF_SIZE = 0.3


@pytest.fixture(autouse=True, scope="module")
def _native_built() -> None:
    if native() is None:
        pytest.fail(f"the native extension did not build: {status()['error']}")


def make_cloud(seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Centres `[40, 3]`: a dense cluster (points there are covered by more than 4 cubes), a loose
    cloud (covered by fewer), some cubes reaching out of BOX; much of BOX stays uncovered."""
    g = torch.Generator().manual_seed(seed)
    cluster = torch.rand(16, 3, generator=g) * 0.3 - 0.6
    loose = torch.rand(24, 3, generator=g) * 2.2 - 1.1
    return torch.cat([cluster, loose]).to(dtype)


def make_points(centers: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """Points `[count, 3]` in BOX: random, the first ones at centres, on cube faces and corners."""
    g = torch.Generator().manual_seed(seed)
    points = (torch.rand(count, 3, generator=g, dtype=torch.float64) * 2 - 1).to(centers.dtype)
    special = min(count // 4, centers.shape[0])
    sides = torch.randint(-1, 2, (special, 3), generator=g).to(centers.dtype)
    points[:special] = centers[:special] + sides * HALF_SIZE
    return points.clamp(-1, 1)


def run_neighbors(impl: str, points: torch.Tensor, centers: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """`trivec_neighbors` over a lookup table of BOX, by `impl`, results on the CPU."""
    grid = lookup_grid(BOX, HALF_SIZE)
    device = "cpu" if impl == "reference" else impl
    table = build_table(centers, HALF_SIZE, grid).to(device)
    args = (points.to(device), centers.to(device), HALF_SIZE, table, grid.origin, grid.cell_size, grid.resolution, k)
    out = reference.trivec_neighbors(*args) if impl == "reference" else trivec_neighbors(*args)
    return tuple(t.cpu() for t in out)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 4])
def test_neighbors_match_brute_force(impl: str, dtype: torch.dtype, k: int) -> None:
    centers = make_cloud(seed=1, dtype=dtype)
    points = make_points(centers, 400, seed=2)
    index, weights, local = run_neighbors(impl, points, centers, k)
    want_index, want_weights, want_local = brute_force_neighbors(points, centers, HALF_SIZE, k)
    covering = torch.stack([(((p - centers).abs() <= HALF_SIZE).all(dim=-1)).sum() for p in points])
    assert (covering > 4).any() and ((covering > 0) & (covering < 4)).any() and (covering == 0).any()
    assert index.dtype == torch.int64 and weights.dtype == dtype and local.dtype == dtype
    assert torch.equal(index, want_index)
    torch.testing.assert_close(weights, want_weights, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(local, want_local, rtol=0, atol=0)
    filled = index >= 0
    torch.testing.assert_close(weights.sum(dim=1)[filled[:, 0]], torch.ones(int(filled[:, 0].sum()), dtype=dtype))
    assert (local[filled].abs() <= 1).all()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_neighbors_outside_the_grid_and_no_points(impl: str) -> None:
    centers = make_cloud(seed=3)
    outside = torch.tensor([[5.0, 0.0, 0.0], [-1.2, -0.5, -0.5], [0.0, 0.0, float("nan")]])
    index, weights, local = run_neighbors(impl, outside, centers, 4)
    assert (index == -1).all() and (weights == 0).all() and (local == 0).all()
    index, weights, local = run_neighbors(impl, torch.zeros(0, 3), centers, 3)
    assert index.shape == (0, 3) and weights.shape == (0, 3) and local.shape == (0, 3, 3)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_neighbors_at_a_centre_take_its_full_weight(impl: str) -> None:
    """d = 0 is clamped at 1e-6 h: the tensor at the point outweighs the others a million times."""
    centers = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    index, weights, _ = run_neighbors(impl, torch.zeros(1, 3), centers, 2)
    assert index.tolist() == [[0, 1]]
    assert weights[0, 0] > 1 - 1e-4 and weights[0, 1] < 1e-4


def make_lines(tensors: int, components: int, length: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tensors, 3, components, length, generator=g, dtype=dtype)


def make_slots(count: int, tensors: int, k: int, seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    """Random slots: indices with empty ones (-1), weights, local coordinates in [-1, 1] with the
    ends and grid points among them."""
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(-1, tensors, (count, k), generator=g)
    weights = torch.rand(count, k, generator=g, dtype=dtype) * (index >= 0)
    local = torch.rand(count, k, 3, generator=g, dtype=dtype) * 2 - 1
    special = torch.tensor([-1.0, 1.0, 0.0, 0.5], dtype=dtype)
    pick = torch.rand(local.shape, generator=g) < 0.2
    local = torch.where(pick, special[torch.randint(0, 4, local.shape, generator=g)], local)
    return index, weights, local


def run_sample(impl: str, lines: torch.Tensor, slots: tuple[torch.Tensor, ...], reduce: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`trivec_sample` by `impl` and the gradient of the lines for a fixed output gradient, on the CPU."""
    device = "cpu" if impl == "reference" else impl
    lines = lines.to(device).requires_grad_()
    slots = tuple(t.to(device) for t in slots)
    out = reference.trivec_sample(lines, *slots, reduce) if impl == "reference" else trivec_sample(lines, *slots, reduce)
    g = torch.Generator().manual_seed(7)
    grad_out = torch.randn(out.shape, generator=g, dtype=out.dtype).to(device)
    (grad,) = torch.autograd.grad(out, lines, grad_out)
    return out.detach().cpu(), grad.cpu()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS[1:])
@pytest.mark.parametrize("reduce", [False, True])
@pytest.mark.parametrize("count", [0, 1, 777])
@pytest.mark.parametrize("shape", [(5, 3, 7), (1, 1, 2), (9, 6, 4)])
def test_sample_matches_reference(impl: str, reduce: bool, count: int, shape: tuple[int, int, int]) -> None:
    tensors, components, length = shape
    lines = make_lines(tensors, components, length, seed=4)
    slots = make_slots(count, tensors, k=3, seed=5)
    out, grad = run_sample(impl, lines, slots, reduce)
    want, want_grad = run_sample("reference", lines, slots, reduce)
    assert out.shape == ((count,) if reduce else (components, count)) and out.dtype == torch.float32
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS[1:])
def test_sample_of_found_neighbors_matches_reference(impl: str) -> None:
    """The two ops chained, as a field runs them: slots straight from the lookup."""
    centers = make_cloud(seed=6)
    slots = run_neighbors(impl, make_points(centers, 500, seed=8), centers, 4)
    lines = make_lines(centers.shape[0], 5, 6, seed=9)
    for reduce in (False, True):
        out, grad = run_sample(impl, lines, slots, reduce)
        want, want_grad = run_sample("reference", lines, slots, reduce)
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, want_grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_sample_hand_values(impl: str) -> None:
    """Component value = sum_k w_k a(u_x) b(u_y) c(u_z), lines interpolated with values at the ends."""
    lines = torch.zeros(2, 3, 2, 3)
    lines[0, 0, 0], lines[0, 1, 0], lines[0, 2, 0] = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 5.0]), torch.tensor([2.0, 2.0, 0.0])
    lines[0, :, 1] = 1.0
    lines[1, :, 0] = 10.0
    lines[1, :, 1] = -1.0
    index = torch.tensor([[0, 1], [0, -1]])
    weights = torch.tensor([[0.25, 0.75], [1.0, 0.0]])
    local = torch.tensor([[[0.5, -1.0, 0.0], [0.0, 0.0, 0.0]], [[1.0, 1.0, -0.5], [0.3, 0.3, 0.3]]])
    # point 0: tensor 0 at positions (1.5, 0, 1): 3 * 1 * 2 = 6; tensor 1: 1000 and -1
    # point 1: tensor 0 at positions (2, 2, 0.5): 4 * 5 * 2 = 40; the empty slot adds nothing
    expected = torch.tensor([[0.25 * 6 + 0.75 * 1000, 40.0], [0.25 - 0.75, 1.0]])
    out, _ = run_sample(impl, lines, (index, weights, local), reduce=False)
    torch.testing.assert_close(out, expected)
    out, _ = run_sample(impl, lines, (index, weights, local), reduce=True)
    torch.testing.assert_close(out, expected.sum(0))


@pytest.mark.parametrize("reduce", [False, True])
def test_sample_gradcheck_float64(reduce: bool) -> None:
    lines = make_lines(3, 2, 4, seed=10, dtype=torch.float64).requires_grad_()
    index, weights, local = make_slots(30, 3, k=2, seed=11, dtype=torch.float64)
    local = torch.where((local * 1.5).frac().abs() < 1e-3, local * 0.99, local)  # off the grid points
    assert torch.autograd.gradcheck(lambda lines: trivec_sample(lines, index, weights, local, reduce), (lines,))


def test_weights_requiring_grad_use_the_reference() -> None:
    """The kernel computes no gradient w.r.t. weights; trivec_sample then runs the reference, which does."""
    lines = make_lines(4, 2, 5, seed=12)
    index, weights, local = make_slots(20, 4, k=2, seed=13)
    weights.requires_grad_()
    (grad,) = torch.autograd.grad(trivec_sample(lines, index, weights, local, True).sum(), weights)
    (want,) = torch.autograd.grad(reference.trivec_sample(lines, index, weights, local, True).sum(), weights)
    torch.testing.assert_close(grad, want)


def _neighbor_args() -> dict:
    centers = make_cloud(seed=14)
    grid = lookup_grid(BOX, HALF_SIZE)
    table = build_table(centers, HALF_SIZE, grid)
    return {"points": torch.zeros(5, 3), "centers": centers, "half_size": HALF_SIZE, "table": table, "origin": grid.origin,
            "cell_size": grid.cell_size, "resolution": grid.resolution, "k": 4}  # fmt: skip


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "points": a["points"].half()}, TypeError, "points must be torch.float32"),
        (lambda a: {**a, "points": a["points"][:, :2]}, ValueError, "points must have shape [*, 3]"),
        (lambda a: {**a, "points": a["points"].tolist()}, TypeError, "points must be a torch.Tensor"),
        (lambda a: {**a, "centers": a["centers"].double()}, TypeError, "centers must be torch.float32"),
        (lambda a: {**a, "table": a["table"].long()}, TypeError, "table must be torch.int32"),
        (lambda a: {**a, "table": a["table"][1:]}, ValueError, "table must have a row per grid cell"),
        (lambda a: {**a, "table": a["table"] + 40}, ValueError, "table holds tensor indices outside [-1, 40)"),
        (lambda a: {**a, "half_size": 0.0}, ValueError, "half_size must be a positive number"),
        (lambda a: {**a, "cell_size": -1.0}, ValueError, "cell_size must be a positive number"),
        (lambda a: {**a, "origin": a["origin"][:2]}, ValueError, "origin must hold 3 values"),
        (lambda a: {**a, "resolution": (0, 1, 1)}, ValueError, "resolution must be 3 positive integers"),
        (lambda a: {**a, "k": 0}, ValueError, "k must be a positive integer"),
    ],
)  # fmt: skip
def test_neighbors_reject_bad_arguments(change, error, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORFIELDS_DEBUG", "1")  # the table's index range is a value check
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*").replace(")", r"\)")):
        trivec_neighbors(**change(_neighbor_args()))


def _sample_args() -> dict:
    index, weights, local = make_slots(6, 4, k=2, seed=15)
    return {"lines": make_lines(4, 3, 5, seed=16), "index": index, "weights": weights, "local": local, "reduce": False}


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "lines": a["lines"][:, :2].contiguous()}, ValueError, "lines must have shape [*, 3, *, *]"),
        (lambda a: {**a, "lines": a["lines"][..., :1].contiguous()}, ValueError, "lines must have at least 2 grid points"),
        (lambda a: {**a, "lines": a["lines"].transpose(2, 3)}, ValueError, "lines must be contiguous"),
        (lambda a: {**a, "index": a["index"].int()}, TypeError, "index must be torch.int64"),
        (lambda a: {**a, "index": a["index"] + 4}, ValueError, "index holds tensor indices outside [-1, 4)"),
        (lambda a: {**a, "weights": a["weights"][:, :1].contiguous()}, ValueError, "weights must have shape [6, 2]"),
        (lambda a: {**a, "weights": a["weights"].double()}, TypeError, "weights must be torch.float32"),
        (lambda a: {**a, "local": a["local"][..., :2].contiguous()}, ValueError, "local must have shape [6, 2, 3]"),
    ],
)  # fmt: skip
def test_sample_rejects_bad_arguments(change, error, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORFIELDS_DEBUG", "1")  # the index range is a value check
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]").replace("*", r"\*").replace(")", r"\)")):
        trivec_sample(**change(_sample_args()))


def test_native_rejects_mismatched_shapes_below_python() -> None:
    """The C++ layer checks too (it is reachable without the Python checks)."""
    a = _sample_args()
    with pytest.raises(RuntimeError, match="local must be"):
        native().trivec_sample_fwd(a["lines"], a["index"], a["weights"], a["local"][:3].contiguous(), False)
    with pytest.raises(RuntimeError, match="grad_out"):
        native().trivec_sample_bwd(a["lines"], a["index"], a["weights"], a["local"], torch.zeros(5), True)
    n = _neighbor_args()
    with pytest.raises(RuntimeError, match="table must have a row per grid cell"):
        native().trivec_neighbors(n["points"], n["centers"], HALF_SIZE, n["table"][1:].contiguous(), list(n["origin"]),
                                  n["cell_size"], list(n["resolution"]), 4)  # fmt: skip
