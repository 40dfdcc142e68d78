"""Value checks run only under TENSORFIELDS_DEBUG (STYLE 16): shape/dtype/device checks always,
checks that read tensor values (a device sync each on CUDA) only with the switch on. On CUDA the
ops are shown to run without a single sync (march_rays: exactly the one that sizes its output)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import pytest
import torch
from conftest import requires_cuda

import cuda_ext
from cuda_ext import (
    composite,
    cp_sample,
    march_rays,
    ray_aabb_intersect,
    render_transmittance,
    status,
    trivec_neighbors,
    trivec_sample,
    update_occupancy,
    vm_sample,
)
from cuda_ext import _checks
from cuda_ext._backend import kernels_for
from cuda_ext._checks import DEBUG_ENV, VALUE_CHECKS, debug_checks


@pytest.fixture
def debug_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


@pytest.fixture
def debug_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "1")


@contextmanager
def no_value_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside: any Python-level read of a tensor's values raises (host copies included)."""

    def trap(name: str) -> Callable[..., None]:
        def read(*args, **kwargs) -> None:
            raise AssertionError(f"a tensor's values were read: Tensor.{name}")

        return read

    with monkeypatch.context() as patch:
        for name in ("item", "tolist", "any", "all", "cpu", "numpy", "__bool__", "__int__", "__float__"):
            patch.setattr(torch.Tensor, name, trap(name))
        patch.setattr(torch, "equal", trap("equal"))
        yield


# --- inputs (small, hand-made, CPU unless moved) ---------------------------------------------------


def packed(counts: list[int], device: str = "cpu", seed: int = 0) -> dict[str, torch.Tensor]:
    """Packed samples of rays with `counts` samples each: the `composite` arguments."""
    g = torch.Generator().manual_seed(seed)
    counts_t = torch.tensor(counts, dtype=torch.long)
    total = int(counts_t.sum())
    t_starts = torch.cumsum(0.01 + 0.05 * torch.rand(total, generator=g), 0)
    values = {
        "sigmas": 5.0 * torch.rand(total, generator=g),
        "rgbs": torch.rand(total, 3, generator=g),
        "t_starts": t_starts,
        "t_ends": t_starts + 0.02,
        "ray_indices": torch.repeat_interleave(torch.arange(len(counts)), counts_t),
        "packed_info": cuda_ext.packed_info_from_counts(counts_t),
    }
    return {k: v.to(device) for k, v in values.items()}


def with_stray_row(samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One more ray whose packed row (first -1, count 0) the debug check rejects; with no samples
    it is harmless to the kernels, so it can be passed with the checks off."""
    stray = torch.tensor([[-1, 0]], dtype=torch.long, device=samples["packed_info"].device)
    return {**samples, "packed_info": torch.cat([samples["packed_info"], stray])}


def neighbor_args(device: str = "cpu") -> dict:
    """A 2 x 2 x 2 lookup grid over [-1, 1]^3 whose cells list 3 tensors (some slots empty)."""
    g = torch.Generator().manual_seed(1)
    table = torch.tensor([[0, 1], [1, -1], [2, -1], [0, 2], [-1, -1], [1, 2], [0, -1], [2, -1]], dtype=torch.int32)
    return {"points": (2.0 * torch.rand(7, 3, generator=g) - 1.0).to(device),
            "centers": torch.tensor([[-0.5, -0.5, -0.5], [0.5, 0.0, 0.0], [0.0, 0.5, 0.5]], device=device),
            "half_size": 0.8, "table": table.to(device), "origin": (-1.0, -1.0, -1.0), "cell_size": 1.0,
            "resolution": (2, 2, 2), "k": 2}  # fmt: skip


def sample_args(device: str = "cpu") -> dict:
    """Tri-vector slots over 4 tensors of 2 components, 5 grid points per line."""
    g = torch.Generator().manual_seed(2)
    index = torch.randint(-1, 4, (6, 2), generator=g)
    return {"lines": torch.randn(4, 3, 2, 5, generator=g).to(device), "index": index.to(device),
            "weights": torch.rand(6, 2, generator=g).to(device),
            "local": (2.0 * torch.rand(6, 2, 3, generator=g) - 1.0).to(device), "reduce": False}  # fmt: skip


def occupancy_args(device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """density_ema `[100]`, 30 distinct cells, their new densities."""
    g = torch.Generator().manual_seed(3)
    ema, cells, new = torch.rand(100, generator=g), torch.randperm(100, generator=g)[:30], torch.rand(30, generator=g)
    return ema.to(device), cells.to(device), new.to(device)


def transmittance_of(s: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return render_transmittance(s["sigmas"], s["t_starts"], s["t_ends"], s["packed_info"], s["ray_indices"])


# --- the switch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, on", [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)])
def test_debug_switch_reads_the_environment_at_each_call(value: str | None, on: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    if value is not None:
        monkeypatch.setenv(DEBUG_ENV, value)
    assert debug_checks() is on


def test_every_value_check_helper_is_known() -> None:
    """VALUE_CHECKS names exactly the helpers of `_checks` that read values (the spies patch those)."""
    assert set(VALUE_CHECKS) == {name for name in _checks.__all__ if name.startswith("check_")} - {"check_tensor"}
    assert all(callable(getattr(_checks, name)) for name in VALUE_CHECKS)


# --- switch off: value defects pass unchecked, nothing reads values --------------------------------


@pytest.mark.usefixtures("debug_off")
def test_ops_skip_value_checks_when_the_switch_is_off(value_check_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    samples = with_stray_row(packed([2, 0, 3]))
    table_args = neighbor_args()
    table_args["table"] = table_args["table"] + 40  # indices past the 3 tensors: kernels treat them as empty
    slot_args = sample_args()
    slot_args["index"] = slot_args["index"] + 4  # likewise
    ema, cells, new = occupancy_args()
    native = kernels_for(torch.device("cpu")) is not None
    with no_value_reads(monkeypatch) if native else nullcontext():
        rgb, opacity, _, _ = composite(**samples)
        transmittance, _ = transmittance_of(samples)
        index, _, _ = trivec_neighbors(**table_args)
        products = trivec_sample(**slot_args)
        update_occupancy(ema, cells, new, 0.8)
    assert value_check_calls == []
    assert rgb.shape == (4, 3) and opacity[3] == 0 and transmittance.shape == (5,)
    assert index.shape == (7, 2) and products.shape == (2, 6)


@pytest.mark.usefixtures("debug_off")
def test_marching_and_factor_sampling_read_no_values(value_check_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """march_rays, ray_aabb_intersect, vm_sample and cp_sample have no value checks at all."""
    if kernels_for(torch.device("cpu")) is None:
        pytest.skip("the reference path is plain torch code; this is about the native ops' Python layer")
    g = torch.Generator().manual_seed(4)
    origins = torch.tensor([[-2.0, 0.1, 0.2], [0.3, -2.0, 0.1], [0.0, 0.0, 0.0]])
    directions = torch.nn.functional.normalize(-origins + 0.1 * torch.randn(3, 3, generator=g), dim=-1)
    directions[2] = torch.tensor([0.0, 0.0, 1.0])
    box = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    occupied = torch.rand(4, 4, 4, generator=g) > 0.3
    planes = [torch.randn(2, 6, 5, generator=g, requires_grad=True) for _ in range(3)]
    lines = [torch.randn(2, 7, generator=g, requires_grad=True) for _ in range(3)]
    xn = 2.0 * torch.rand(9, 3, generator=g) - 1.0
    with no_value_reads(monkeypatch):
        t_min, t_max, _ = ray_aabb_intersect(origins, directions, box, 0.0, math.inf)
        march_rays(origins, directions, t_min, t_max, occupied, box, 0.05, torch.rand(3, generator=g))
        march_rays(origins, directions, t_min, t_max, occupied, box, 0.05, None, 0.01, 0.5)
        (vm_sample(planes, lines, xn, True).sum() + cp_sample(lines, xn, False).sum()).backward()
    assert value_check_calls == []


@pytest.mark.usefixtures("debug_off")
def test_shape_checks_still_run_when_the_switch_is_off() -> None:
    samples = packed([2, 3])
    with pytest.raises(ValueError, match="rgbs must have shape"):
        composite(**{**samples, "rgbs": samples["rgbs"][:, :2]})
    with pytest.raises(TypeError, match="packed_info must be torch.int64"):
        composite(**{**samples, "packed_info": samples["packed_info"].int()})
    with pytest.raises(ValueError, match="table must have a row per grid cell"):
        trivec_neighbors(**{**neighbor_args(), "table": neighbor_args()["table"][1:]})
    with pytest.raises(ValueError, match=r"weights must have shape \[6, 2\]"):
        trivec_sample(**{**sample_args(), "weights": sample_args()["weights"][:, :1].contiguous()})


# --- switch on: every gated check fires with its message -------------------------------------------


def _composite_stray() -> None:
    composite(**with_stray_row(packed([2, 3])))


def _composite_overrun() -> None:
    samples = packed([2, 3])
    composite(**{**samples, "packed_info": samples["packed_info"] + 1})


def _transmittance_stray() -> None:
    transmittance_of(with_stray_row(packed([2, 3])))


def _occupancy_out_of_range() -> None:
    ema, cells, new = occupancy_args()
    update_occupancy(ema, cells + 80, new, 0.8)


def _occupancy_negative() -> None:
    ema, cells, new = occupancy_args()
    update_occupancy(ema, cells - 100, new, 0.8)


def _table_out_of_range() -> None:
    trivec_neighbors(**{**neighbor_args(), "table": neighbor_args()["table"] + 40})


def _table_below_empty() -> None:
    trivec_neighbors(**{**neighbor_args(), "table": neighbor_args()["table"] - 1})


def _index_out_of_range() -> None:
    trivec_sample(**{**sample_args(), "index": sample_args()["index"] + 4})


@pytest.mark.usefixtures("debug_on")
@pytest.mark.parametrize(
    "call, helper, needle",
    [
        (_composite_stray, "check_packed_info", r"packed_info has \(first, count\) rows outside the 5 samples"),
        (_composite_overrun, "check_packed_info", r"packed_info has \(first, count\) rows outside the 5 samples"),
        (_transmittance_stray, "check_packed_info", r"packed_info has \(first, count\) rows outside the 5 samples"),
        (_occupancy_out_of_range, "check_index_range", r"cell_indices must lie in \[0, 100\)"),
        (_occupancy_negative, "check_index_range", r"cell_indices must lie in \[0, 100\)"),
        (_table_out_of_range, "check_index_range", r"table holds tensor indices outside \[-1, 3\) \(-1 marks an empty slot\)"),
        (_table_below_empty, "check_index_range", r"table holds tensor indices outside \[-1, 3\)"),
        (_index_out_of_range, "check_index_range", r"index holds tensor indices outside \[-1, 4\) \(-1 marks an empty slot\)"),
    ],
)  # fmt: skip
def test_value_checks_fire_when_the_switch_is_on(
    call: Callable[[], None], helper: str, needle: str, value_check_calls: list[str]
) -> None:
    with pytest.raises(ValueError, match=needle):
        call()
    assert value_check_calls[-1] == helper


@pytest.mark.usefixtures("debug_on")
def test_valid_arguments_pass_the_value_checks(value_check_calls: list[str]) -> None:
    samples = packed([2, 0, 3])
    composite(**samples)
    transmittance_of(samples)
    trivec_neighbors(**neighbor_args())
    trivec_sample(**sample_args())
    update_occupancy(*occupancy_args(), 0.8)
    assert value_check_calls == ["check_packed_info"] * 2 + ["check_index_range"] * 3


# --- CUDA: no syncs -----------------------------------------------------------------------------------


def _require_cuda_kernels() -> None:
    if not status()["cuda"]:
        pytest.skip(f"the native extension has no CUDA kernels here: {status()}")


@contextmanager
def syncs_are_errors() -> Iterator[None]:
    """Inside: a synchronizing CUDA operation raises (torch.cuda.set_sync_debug_mode("error"))."""
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "a prototype feature" (the mode is set at once, below)
        torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def _cuda_op_inputs() -> dict:
    device = "cuda"
    g = torch.Generator().manual_seed(5)
    samples = packed([3, 0, 4, 2], device)
    samples["sigmas"].requires_grad_(True)
    samples["rgbs"].requires_grad_(True)
    origins = torch.tensor([[-2.0, 0.1, 0.2], [0.3, -2.0, 0.1], [0.2, 0.1, -2.5]])
    return {
        "samples": samples,
        "origins": origins.to(device),
        "directions": torch.nn.functional.normalize(-origins, dim=-1).to(device),
        "box": torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]),  # on the host, as OccupancyGrid.host_aabb gives it
        "occupied": (torch.rand(8, 8, 8, generator=g) > 0.3).to(device),
        "jitter": torch.rand(3, generator=g).to(device),
        "planes": [torch.randn(3, 9, 8, generator=g).to(device).requires_grad_(True) for _ in range(3)],
        "lines": [torch.randn(3, 10, generator=g).to(device).requires_grad_(True) for _ in range(3)],
        "xn": (2.0 * torch.rand(50, 3, generator=g) - 1.0).to(device),
        "neighbors": neighbor_args(device),
        "slots": {**sample_args(device), "lines": sample_args(device)["lines"].requires_grad_(True)},
    }


def _run_sync_free_ops(a: dict) -> None:
    """The ops that need no host value at all (box from the host), forward and backward."""
    s = a["samples"]
    t_min, t_max, _ = ray_aabb_intersect(a["origins"], a["directions"], a["box"], 0.0, math.inf)
    transmittance, alphas = render_transmittance(s["sigmas"], s["t_starts"], s["t_ends"], s["packed_info"], s["ray_indices"])
    rgb, opacity, depth, _ = composite(**s)
    loss = rgb.sum() + opacity.sum() + depth.sum() + t_min.sum() + t_max.sum() + transmittance.sum() + alphas.sum()
    loss = loss + vm_sample(a["planes"], a["lines"], a["xn"], True).sum() + cp_sample(a["lines"], a["xn"], False).sum()
    index, weights, local = trivec_neighbors(**a["neighbors"])
    loss = loss + trivec_sample(**a["slots"]).sum() + weights.sum()
    loss.backward()


@requires_cuda
@pytest.mark.usefixtures("debug_off")
def test_cuda_ops_run_without_a_device_sync() -> None:
    _require_cuda_kernels()
    a = _cuda_op_inputs()
    _run_sync_free_ops(a)  # warm-up: lazy initialisation may sync once
    with syncs_are_errors():
        _run_sync_free_ops(a)


@requires_cuda
@pytest.mark.usefixtures("debug_off")
def test_cuda_marching_syncs_only_to_size_its_output(cuda_sync_count: Callable[[Callable[[], None]], int]) -> None:
    """march_rays reads one number on the host, its total sample count (a real need: the outputs'
    size); with a host box nothing else."""
    _require_cuda_kernels()
    a = _cuda_op_inputs()
    t_min, t_max, _ = ray_aabb_intersect(a["origins"], a["directions"], a["box"], 0.0, math.inf)

    def march() -> None:
        march_rays(a["origins"], a["directions"], t_min, t_max, a["occupied"], a["box"], 0.05, a["jitter"])
        march_rays(a["origins"], a["directions"], t_min, t_max, a["occupied"], a["box"], 0.05, None, 0.01, 0.3)

    march()
    assert cuda_sync_count(march) == 2


@requires_cuda
@pytest.mark.usefixtures("debug_on")
def test_cuda_value_checks_run_with_the_switch_on(cuda_sync_count: Callable[[Callable[[], None]], int]) -> None:
    _require_cuda_kernels()
    with pytest.raises(ValueError, match="packed_info has"):
        composite(**with_stray_row(packed([2, 3], "cuda")))
    samples = packed([2, 3], "cuda")
    assert cuda_sync_count(lambda: composite(**samples)) >= 1  # the check reads the offsets
