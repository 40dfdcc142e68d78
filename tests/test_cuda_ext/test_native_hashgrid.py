"""The multiresolution hash encoding (instant-ngp): the native kernels (C++ here; CUDA with a GPU)
against the pure-torch reference, and the reference against hand-computed values."""

from __future__ import annotations

import math
import re

import pytest
import torch
from conftest import requires_cuda

from cuda_ext import hash_encode, hash_level_resolutions, reference, status
from cuda_ext._backend import native

IMPLEMENTATIONS = ["reference", "cpu", pytest.param("cuda", marks=requires_cuda)]


@pytest.fixture(autouse=True, scope="module")
def _native_built() -> None:
    if native() is None:
        pytest.fail(f"the native extension did not build: {status()['error']}")


def make_table(levels: int, size: int, features: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(levels, size, features, generator=g, dtype=dtype)


def make_points(count: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Points `[count, 3]` in the unit cube, a quarter of their coordinates on its faces (0 or 1) or at 0.5."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(count, 3, generator=g, dtype=dtype)
    special = torch.tensor([0.0, 1.0, 0.5], dtype=dtype)
    pick = torch.rand(points.shape, generator=g) < 0.25
    return torch.where(pick, special[torch.randint(0, 3, points.shape, generator=g)], points)


def run(impl: str, points: torch.Tensor, table: torch.Tensor, base: float, finest: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoding by `impl` and the gradient of the table for a fixed output gradient, on the CPU."""
    device = "cpu" if impl == "reference" else impl
    table = table.to(device).requires_grad_()
    points = points.to(device)
    out = (reference.hash_encode if impl == "reference" else hash_encode)(points, table, base, finest)
    g = torch.Generator().manual_seed(7)
    grad_out = torch.randn(out.shape, generator=g, dtype=out.dtype).to(device)
    (grad,) = torch.autograd.grad(out, table, grad_out)
    return out.detach().cpu(), grad.cpu()


@pytest.mark.parametrize("impl", IMPLEMENTATIONS[1:])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "levels, size, features, base, finest",
    [(16, 1 << 12, 2, 4, 96), (3, 64, 1, 2, 5), (1, 1 << 10, 4, 6, 6), (5, 8, 3, 1, 40)],
)
@pytest.mark.parametrize("count", [1, 777])
def test_native_matches_reference(
    impl: str, dtype: torch.dtype, levels: int, size: int, features: int, base: float, finest: float, count: int
) -> None:
    """Dense and hashed levels (16 levels: the coarse ones dense, the fine ones hashed; T = 8: every level hashed)."""
    table = make_table(levels, size, features, seed=1, dtype=dtype)
    points = make_points(count, seed=2, dtype=dtype)
    out, grad = run(impl, points, table, base, finest)
    want, want_grad = run("reference", points, table, base, finest)
    assert out.shape == (count, levels * features) and out.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(out, want, **tol)
    torch.testing.assert_close(grad, want_grad, **tol)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_no_points(impl: str) -> None:
    out, grad = run(impl, torch.zeros(0, 3), make_table(4, 32, 2, seed=3), 2, 9)
    assert out.shape == (0, 8) and torch.equal(grad, torch.zeros(4, 32, 2))


def test_resolutions_grow_geometrically_to_the_finest() -> None:
    resolutions = hash_level_resolutions(16, 16, 512)
    assert resolutions[0] == 16 and resolutions[-1] == 512 and resolutions[9] == 128  # b = 2^(1/3): 16 * 2^3 at l = 9
    growth = math.exp(math.log(512 / 16) / 15)
    assert resolutions == [math.floor(16 * growth**level * (1 + 1e-9)) for level in range(16)]
    assert hash_level_resolutions(1, 7.5, 100) == [7]
    assert hash_level_resolutions(4, 2, 2) == [2, 2, 2, 2]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_dense_level_interpolates_its_grid_trilinearly(impl: str) -> None:
    """One dense level of 2 cells per axis (27 vertices in 32 rows): row i + 3 j + 9 k holds the
    vertex (i, j, k); a table of f(i, j, k) = i + 10 j + 100 k, affine, is interpolated exactly,
    on the faces of the cube too (x = 0 and x = 1 are its first and last vertices)."""
    ijk = torch.stack(torch.meshgrid(*[torch.arange(3)] * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    table = torch.zeros(1, 32, 1, dtype=torch.float64)
    rows = ijk[:, 0] + 3 * ijk[:, 1] + 9 * ijk[:, 2]
    table[0, rows, 0] = (ijk.double() * torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)).sum(-1)
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.25, 0.5, 0.9], [1.0, 0.0, 0.3]], dtype=torch.float64)
    out, _ = run(impl, points, table, 2, 2)
    expected = (2 * points * torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)).sum(-1, keepdim=True)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_hashed_level_uses_instant_ngps_hash(impl: str) -> None:
    """A level of 4 cells per axis (125 vertices) in 16 rows is hashed: a point at vertex (i, j, k)
    reads row (i ^ j * 2654435761 ^ k * 805459861) mod 16 alone."""
    table = torch.arange(16, dtype=torch.float64).reshape(1, 16, 1)
    vertices = [(0, 0, 0), (1, 2, 3), (4, 4, 4), (3, 0, 1), (2, 4, 0)]
    points = torch.tensor(vertices, dtype=torch.float64) / 4
    out, _ = run(impl, points, table, 4, 4)
    primes = reference.HASH_PRIMES
    expected = [float((i * primes[0] ^ j * primes[1] ^ k * primes[2]) % 16) for i, j, k in vertices]
    assert out[:, 0].tolist() == expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_colliding_corners_add_up_their_gradients(impl: str) -> None:
    """In a table of 2 rows all 8 corners of a point fall on 2 rows: each row's gradient is the sum of
    the weights of the corners hashed there (instant-ngp lets collisions share an entry)."""
    table = torch.zeros(1, 2, 1, dtype=torch.float64)
    points = torch.tensor([[0.3, 0.6, 0.15], [0.9, 0.2, 0.7]], dtype=torch.float64)
    device = "cpu" if impl == "reference" else impl
    t = table.to(device).requires_grad_()
    encode = reference.hash_encode if impl == "reference" else hash_encode
    encode(points.to(device), t, 1, 1).sum().backward()
    grad = t.grad.cpu()[0, :, 0]
    # resolution 1: corners are (bx, by, bz) in {0, 1}^3; row = (bx ^ by * p1 ^ bz * p2) mod 2 = bx ^ by ^ bz (odd primes)
    want = torch.zeros(2, dtype=torch.float64)
    for x, y, z in points.tolist():
        for c in range(8):
            bx, by, bz = c & 1, (c >> 1) & 1, (c >> 2) & 1
            w = (x if bx else 1 - x) * (y if by else 1 - y) * (z if bz else 1 - z)
            want[bx ^ by ^ bz] += w
    torch.testing.assert_close(grad, want)
    assert grad.sum().item() == pytest.approx(2.0)  # trilinear weights sum to 1 per point


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_points_outside_the_cube_are_clamped_to_it(impl: str) -> None:
    table = make_table(3, 64, 2, seed=4)
    outside = torch.tensor([[-0.5, 0.2, 1.5], [2.0, -3.0, 0.4], [float("nan"), 0.5, 0.5], [float("inf"), 0.1, -float("inf")]])
    clamped = torch.tensor([[0.0, 0.2, 1.0], [1.0, 0.0, 0.4], [0.0, 0.5, 0.5], [1.0, 0.1, 0.0]])
    out, _ = run(impl, outside, table, 2, 7)
    want, _ = run(impl, clamped, table, 2, 7)
    torch.testing.assert_close(out, want, rtol=0, atol=0)


def test_gradcheck_float64() -> None:
    """A tiny table with a dense and two hashed levels (some of them colliding)."""
    table = make_table(3, 16, 2, seed=5, dtype=torch.float64).requires_grad_()
    points = make_points(40, seed=6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: hash_encode(points, t, 1, 6), (table,))


def test_points_get_no_gradient() -> None:
    """The points are constants on both paths (the table's gradient is all there is)."""
    table = make_table(2, 64, 2, seed=8).requires_grad_()
    for encode in (hash_encode, reference.hash_encode):
        points = make_points(10, seed=9).requires_grad_()
        encode(points, table, 2, 4).sum().backward()
        assert points.grad is None and table.grad is not None
        table.grad = None


def test_a_table_not_requiring_grad_needs_no_backward() -> None:
    """ctx.needs_input_grad: the output of a frozen table carries no graph to the kernel."""
    out = hash_encode(make_points(10, seed=10), make_table(2, 64, 2, seed=11), 2, 4)
    assert not out.requires_grad


def _args() -> dict:
    return {"points": make_points(5, seed=12), "table": make_table(4, 64, 2, seed=13), "base_resolution": 2, "finest_resolution": 16}


@pytest.mark.parametrize(
    "change, error, needle",
    [
        (lambda a: {**a, "points": a["points"].half()}, TypeError, "points must be torch.float32, got torch.float16"),
        (lambda a: {**a, "points": a["points"][:, :2].contiguous()}, ValueError, "points must have shape [*, 3]"),
        (lambda a: {**a, "points": a["points"].tolist()}, TypeError, "points must be a torch.Tensor"),
        (lambda a: {**a, "points": a["points"].t().contiguous().t()}, ValueError, "points must be contiguous"),
        (lambda a: {**a, "table": a["table"].double()}, TypeError, "table must be torch.float32, got torch.float64"),
        (lambda a: {**a, "table": a["table"][0]}, ValueError, "table must have shape [*, *, *]"),
        (lambda a: {**a, "table": a["table"][:, :48].contiguous()}, ValueError, "power-of-two number of rows per level (T = 2^k, k <= 31), got 48"),
        (lambda a: {**a, "table": a["table"][:, :, :0].contiguous()}, ValueError, "table must have at least 1 feature per row"),
        (lambda a: {**a, "table": torch.zeros(65, 4, 1)}, ValueError, "table must have 1 to 64 levels, got 65"),
        (lambda a: {**a, "base_resolution": 0.5}, ValueError, "base_resolution must be a number from 1 to 1048576, got 0.5"),
        (lambda a: {**a, "finest_resolution": 2**21}, ValueError, "finest_resolution must be a number from 1 to 1048576"),
        (lambda a: {**a, "finest_resolution": float("nan")}, ValueError, "finest_resolution must be a number from 1 to 1048576"),
        (lambda a: {**a, "base_resolution": True}, ValueError, "base_resolution must be a number"),
        (lambda a: {**a, "finest_resolution": 1}, ValueError, "finest_resolution (1) must be at least base_resolution (2)"),
    ],
)  # fmt: skip
def test_rejects_bad_arguments(change, error, needle: str) -> None:
    with pytest.raises(error, match=re.escape(needle)):
        hash_encode(**change(_args()))


def test_native_rejects_bad_arguments_below_python() -> None:
    """The C++ layer checks too (it is reachable without the Python checks)."""
    a = _args()
    with pytest.raises(RuntimeError, match="resolutions must hold one value per level"):
        native().hash_encode_fwd(a["points"], a["table"], [2, 4])
    with pytest.raises(RuntimeError, match=re.escape("resolutions must lie in [1, 2^20]")):
        native().hash_encode_fwd(a["points"], a["table"], [2, 4, 0, 8])
    with pytest.raises(RuntimeError, match=re.escape("table must have 2^k entries per level")):
        native().hash_encode_fwd(a["points"], a["table"][:, :48].contiguous(), [2, 4, 8, 16])
    with pytest.raises(RuntimeError, match=re.escape("grad_features must be [L * F, N]")):
        native().hash_encode_bwd(a["points"], a["table"], [2, 4, 8, 16], torch.zeros(5, 8))


@requires_cuda
def test_a_cuda_tensor_reaching_a_cpu_only_build_is_refused() -> None:
    """Where the extension has CUDA kernels this runs them; otherwise it must raise, not crash."""
    a = _args()
    points, table = a["points"].cuda(), a["table"].cuda()
    if status()["cuda"]:
        assert native().hash_encode_fwd(points, table, [2, 4, 8, 16]).shape == (8, 5)
    else:
        with pytest.raises(RuntimeError, match="built without CUDA"):
            native().hash_encode_fwd(points, table, [2, 4, 8, 16])
