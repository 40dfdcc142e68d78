"""What a checkpoint must hold before anything is built from it, and the checks of JSON records.

A checkpoint's header says which field to build and how large it is; its tensors must then be
exactly that field's state, the occupancy grid's, and Adam's state for the field's parameters.
The checks read the names, dtypes and shapes of the file's tensors (`TensorInfo`, from the
safetensors header, before any data is read), the JSON header, and then the values, so that a
damaged or hand-made file is refused in one line instead of allocating what its header asks
for, rendering NaNs, or letting the fused Adam step write past a moment's buffer.

Limits on what a header may ask for: `MAX_TENSOR_ELEMENTS` per tensor, `MAX_FIELD_ELEMENTS` for
the field's whole state, `MAX_GRID_RESOLUTION` occupancy cells per axis and `MAX_STEPS_PER_RAY`
render steps across the occupancy grid's box. Every failure is an `Invalid(where, problem)`,
`where` naming the tensor or header key (`train_state.iteration`, `optim.3.exp_avg`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import torch

from render import NDC, RenderSettings

__all__ = [
    "Invalid",
    "TensorInfo",
    "MAX_TENSOR_ELEMENTS",
    "MAX_FIELD_ELEMENTS",
    "MAX_GRID_RESOLUTION",
    "MAX_STEPS_PER_RAY",
    "entry",
    "as_dict",
    "as_str",
    "as_bool",
    "as_int",
    "as_number",
    "check_names",
    "check_field_layout",
    "check_grid_layout",
    "check_optimizer_layout",
    "check_values",
    "check_render",
    "check_train_state",
]

#: elements of one tensor at most (1 GiB of float32; a VM plane of 48 components up to 2,364^2)
MAX_TENSOR_ELEMENTS = 1 << 28
#: elements of a field's whole state at most (2 GiB of float32)
MAX_FIELD_ELEMENTS = 1 << 29
#: occupancy cells per axis at most (and MAX_TENSOR_ELEMENTS in all)
MAX_GRID_RESOLUTION = 1024
#: render steps (render.step_size) across the diagonal of the occupancy grid's box at most
MAX_STEPS_PER_RAY = 1 << 16

#: safetensors dtype codes, as torch names them
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "BOOL": "bool", "U8": "uint8",
           "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "U16": "uint16", "U32": "uint32", "U64": "uint64"}  # fmt: skip
_REALS = {"F64", "F32", "F16", "BF16", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64"}
#: Adam's state per parameter (`max_exp_avg_sq` with amsgrad)
_ADAM_KEYS = ("step", "exp_avg", "exp_avg_sq")
#: known training-state entries (the loop's and the strategies'; older checkpoints keep them in
#: one flat dict) and what each must be; other entries are kept as they are
_COUNTERS = ("iteration", "upsamples_done", "shrinks_done", "last_rank_increment", "adam_step")
_AMOUNTS = ("train_seconds", "last_lr_reset")
_FLAGS = ("shrunk", "placed", "coarse", "blur_done")
_OPTIONAL_NUMBERS = ("previous_loss",)


class Invalid(Exception):
    """One problem of a checkpoint or run record: `where` (a tensor or key) and what is wrong."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


@dataclass(frozen=True)
class TensorInfo:
    """A tensor of a safetensors file as its header describes it: dtype code ("F32") and shape."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# --- JSON values ----------------------------------------------------------------------------
def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, list, dict, type(None))) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def entry(mapping: dict[str, Any], key: str, where: str) -> Any:
    """`mapping[key]`, or Invalid(where, "missing")."""
    if key not in mapping:
        raise Invalid(where, "missing")
    return mapping[key]


def as_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(where, f"{_show(value)} is not a JSON object")
    return value


def as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise Invalid(where, f"{_show(value)} is not a string")
    return value


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise Invalid(where, f"{_show(value)} is not true or false")
    return value


def as_int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise Invalid(where, f"{_show(value)} is not an integer >= {minimum}")
    return value


def as_number(value: Any, where: str, minimum: float | None = None, above: float | None = None) -> float:
    """A finite JSON number, >= `minimum` and > `above` where given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(where, f"{_show(value)} is not a finite number")
    if minimum is not None and value < minimum:
        raise Invalid(where, f"{_show(value)} is below {minimum}")
    if above is not None and value <= above:
        raise Invalid(where, f"{_show(value)} is not above {above}")
    return float(value)


def _shape(shape: tuple[int, ...]) -> str:
    return str(list(shape))


def _dtype(code: str) -> str:
    return _DTYPES.get(code, code)


def _expect(info: TensorInfo, where: str, shape: tuple[int, ...], dtypes: tuple[str, ...], what: str) -> None:
    if info.shape != shape:
        raise Invalid(where, f"shape {_shape(info.shape)}, but {what} {_shape(shape)}")
    if info.dtype not in dtypes:
        raise Invalid(where, f"dtype {_dtype(info.dtype)}, expected {' or '.join(_dtype(d) for d in dtypes)}")


# --- tensors: names, shapes, dtypes ---------------------------------------------------------
def check_names(tensors: dict[str, TensorInfo]) -> None:
    """Every tensor is a `field.*`, `grid.*`, `optim.*` or `state.*` one."""
    for key in tensors:
        if not key.startswith(("field.", "grid.", "optim.", "state.")):
            raise Invalid(key, "unexpected tensor (a checkpoint holds field.*, grid.*, optim.* and state.* tensors)")


def check_field_layout(tensors: dict[str, TensorInfo], expected: dict[str, tuple[int, ...]], field_name: str) -> None:
    """The `field.*` tensors are exactly the state `expected` (from `Field.state_shapes` of the
    header's config), in float32 (float16 in compact checkpoints); the config is first bounded
    by `MAX_TENSOR_ELEMENTS` and `MAX_FIELD_ELEMENTS`."""
    sizes = {name: math.prod(shape) for name, shape in expected.items()}
    largest = max(sizes, key=sizes.__getitem__, default=None)
    if largest is not None and sizes[largest] > MAX_TENSOR_ELEMENTS:
        raise Invalid(
            "field_config",
            f"a {field_name} field of this config has a tensor {largest} of {_shape(expected[largest])} = {sizes[largest]:,} "
            f"elements; the limit is {MAX_TENSOR_ELEMENTS:,} per tensor (1 GiB of float32)",
        )
    total = sum(sizes.values())
    if total > MAX_FIELD_ELEMENTS:
        raise Invalid(
            "field_config",
            f"a {field_name} field of this config holds {total:,} elements; the limit is {MAX_FIELD_ELEMENTS:,} (2 GiB of float32)",
        )
    present = {key[len("field.") :]: info for key, info in tensors.items() if key.startswith("field.")}
    for name, shape in expected.items():
        if name not in present:
            raise Invalid(f"field.{name}", f"missing (a {field_name} field of this config has it, {_shape(shape)})")
    for name in present:
        if name not in expected:
            raise Invalid(f"field.{name}", f"unexpected tensor (a {field_name} field of this config has no such state)")
    for name, shape in expected.items():
        _expect(present[name], f"field.{name}", shape, ("F32", "F16"), "the header's field_config implies")


def _grid_resolution(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Invalid(where, f"{_show(value)} is not 3 cell counts")
    if min(value) < 1 or max(value) > MAX_GRID_RESOLUTION or math.prod(value) > MAX_TENSOR_ELEMENTS:
        raise Invalid(
            where,
            f"an occupancy grid of {value} cells; the limit is 1 to {MAX_GRID_RESOLUTION} per axis and {MAX_TENSOR_ELEMENTS:,} in all",
        )
    return value


def check_grid_layout(tensors: dict[str, TensorInfo], header: dict[str, Any]) -> None:
    """The `grid.*` tensors: `aabb [2, 3]` float32 and either `occupied [X, Y, Z]` bool with
    `density_ema [X*Y*Z]` float32, or (compact) `occupied_bits` uint8 packing the header's
    `grid_resolution`; at most `MAX_GRID_RESOLUTION` cells per axis."""
    grid = {key[len("grid.") :]: info for key, info in tensors.items() if key.startswith("grid.")}
    compact = "occupied_bits" in grid
    wanted = ("aabb", "occupied_bits") if compact else ("aabb", "occupied", "density_ema")
    for name in wanted:
        if name not in grid:
            raise Invalid(f"grid.{name}", f"missing (the occupancy grid is {', '.join(f'grid.{n}' for n in wanted)})")
    for name in grid:
        if name not in wanted:
            raise Invalid(f"grid.{name}", f"unexpected tensor (the occupancy grid is {', '.join(f'grid.{n}' for n in wanted)})")
    _expect(grid["aabb"], "grid.aabb", (2, 3), ("F32",), "a box is")
    if compact:
        resolution = _grid_resolution(header.get("grid_resolution"), "grid_resolution")
        bits = (math.prod(resolution) + 7) // 8
        _expect(grid["occupied_bits"], "grid.occupied_bits", (bits,), ("U8",), f"the bits of grid_resolution {resolution} take")
        return
    occupied = grid["occupied"]
    if len(occupied.shape) != 3:
        raise Invalid("grid.occupied", f"shape {_shape(occupied.shape)}, but an occupancy grid is [X, Y, Z]")
    resolution = _grid_resolution(list(occupied.shape), "grid.occupied")
    _expect(occupied, "grid.occupied", tuple(resolution), ("BOOL",), "an occupancy grid is")
    _expect(grid["density_ema"], "grid.density_ema", (math.prod(resolution),), ("F32",), "one value per cell of grid.occupied is")


def _check_group(saved: dict[str, Any], where: str) -> None:
    """Adam's hyperparameters in a saved param group (torch's names)."""
    as_number(entry(saved, "lr", f"{where}.lr"), f"{where}.lr", minimum=0)
    for key in ("initial_lr", "eps", "weight_decay"):
        if key in saved:
            as_number(saved[key], f"{where}.{key}", minimum=0)
    if "betas" in saved:
        betas = saved["betas"]
        if not isinstance(betas, list) or len(betas) != 2:
            raise Invalid(f"{where}.betas", f"{_show(betas)} is not two numbers")
        for i, beta in enumerate(betas):
            if as_number(beta, f"{where}.betas[{i}]", minimum=0) >= 1:
                raise Invalid(f"{where}.betas[{i}]", f"{_show(beta)} is not below 1")
    for key in ("amsgrad", "maximize", "capturable", "differentiable", "fused", "foreach", "decoupled_weight_decay"):
        if saved.get(key) is not None:  # torch leaves some of them None ("fused", "foreach")
            as_bool(saved[key], f"{where}.{key}")


def check_optimizer_layout(
    tensors: dict[str, TensorInfo], groups: Any, field_groups: list[tuple[str, list[tuple[str, torch.Tensor]]]], field_name: str
) -> None:
    """The header's `optimizer_groups` and the `optim.<param id>.<key>` tensors against the
    parameters they belong to.

    Args:
        groups: the header's `optimizer_groups` (None: the checkpoint has no optimizer state).
        field_groups: the field's `param_groups()` as (group name, [(parameter name, parameter)]):
            torch maps saved parameter ids onto these group by group, in order.
    """
    optim = {key: info for key, info in tensors.items() if key.startswith("optim.")}
    if groups is None:
        if optim:
            raise Invalid(next(iter(optim)), "optimizer state without optimizer_groups in the header")
        return
    if not isinstance(groups, list) or len(groups) != len(field_groups):
        count = f"{len(groups)} parameter groups" if isinstance(groups, list) else f"{_show(groups)} is not a list of parameter groups"
        names = ", ".join(name for name, _ in field_groups)
        raise Invalid("optimizer_groups", f"{count}; a {field_name} field is optimized in {len(field_groups)} ({names})")
    params: dict[int, tuple[str, torch.Tensor, bool]] = {}
    for g, (saved, (group_name, members)) in enumerate(zip(groups, field_groups)):
        where = f"optimizer_groups[{g}]"
        saved = as_dict(saved, where)
        ids = entry(saved, "params", f"{where}.params")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise Invalid(f"{where}.params", f"{_show(ids)} is not a list of parameter ids (integers >= 0)")
        if len(ids) != len(members):
            raise Invalid(f"{where}.params", f"{len(ids)} parameters, but the field's group '{group_name}' has {len(members)}")
        _check_group(saved, where)
        for i, (name, param) in zip(ids, members):
            if i in params:
                raise Invalid(f"{where}.params", f"parameter id {i} is listed twice")
            params[i] = (name, param, bool(saved.get("amsgrad", False)))
    state: dict[int, set[str]] = {}
    for key, info in optim.items():
        parts = key.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            raise Invalid(key, "unexpected tensor (optimizer state is optim.<parameter id>.<step|exp_avg|exp_avg_sq>)")
        pid, name = int(parts[1]), parts[2]
        if pid not in params:
            raise Invalid(key, f"parameter id {pid} is in no group of optimizer_groups (ids {min(params)} to {max(params)})")
        param_name, param, amsgrad = params[pid]
        if name not in _ADAM_KEYS + (("max_exp_avg_sq",) if amsgrad else ()):
            raise Invalid(key, f"unexpected tensor (Adam keeps {', '.join(_ADAM_KEYS)} per parameter)")
        if name == "step":
            if info.shape != ():
                raise Invalid(key, f"shape {_shape(info.shape)}, but a step count is a scalar, []")
            if info.dtype not in _REALS:
                raise Invalid(key, f"dtype {_dtype(info.dtype)}, but a step count is a number")
        else:
            dtype = str(param.dtype).removeprefix("torch.")
            _expect(info, key, tuple(param.shape), tuple(c for c, n in _DTYPES.items() if n == dtype), f"its parameter field.{param_name} has")
        state.setdefault(pid, set()).add(name)
    for pid, names in sorted(state.items()):
        for name in _ADAM_KEYS + (("max_exp_avg_sq",) if params[pid][2] else ()):
            if name not in names:
                raise Invalid(f"optim.{pid}.{name}", f"missing (optim.{pid} has {', '.join(sorted(names))})")


# --- values ---------------------------------------------------------------------------------
def check_values(tensors: dict[str, torch.Tensor], step_size: float) -> None:
    """Finite floating-point values everywhere, boxes with min < max, Adam's second moments and
    step counts >= 0, and at most `MAX_STEPS_PER_RAY` render steps of `step_size` across the
    occupancy grid's box."""
    for key, value in tensors.items():
        if value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise Invalid(key, f"{bad:,} of {value.numel():,} values are not finite (NaN or infinite)")
        if key.startswith("optim.") and key.endswith((".exp_avg_sq", ".step")) and bool((value < 0).any()):
            raise Invalid(key, f"negative values (a {'step count' if key.endswith('.step') else 'second moment'} is >= 0)")
    for key in ("field.aabb", "grid.aabb"):
        if key in tensors:
            box = tensors[key].double().cpu()
            if not bool((box[0] < box[1]).all()):
                raise Invalid(key, f"{[[round(v, 4) for v in row] for row in box.tolist()]} is not a box (min < max on every axis)")
    diagonal = float((tensors["grid.aabb"][1] - tensors["grid.aabb"][0]).double().norm())
    if diagonal / step_size > MAX_STEPS_PER_RAY:
        raise Invalid(
            "render.step_size",
            f"{step_size:g} makes {diagonal / step_size:,.0f} steps across the box's diagonal {diagonal:g}; the limit is {MAX_STEPS_PER_RAY:,}",
        )


# --- header sections --------------------------------------------------------------------------
def _only_fields(values: dict[str, Any], cls: type, where: str, what: str) -> None:
    """Refuse a key of `values` that is not a field of the dataclass `cls`."""
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise Invalid(f"{where}.{key}", f"unknown {what} (known: {', '.join(sorted(known))})")


def check_render(values: Any) -> None:
    """The `render` section: `render.RenderSettings` fields of the right types and ranges."""
    values = as_dict(values, "render")
    _only_fields(values, RenderSettings, "render", "render setting")
    as_number(entry(values, "step_size", "render.step_size"), "render.step_size", above=0)
    near = as_number(values.get("near", 0.0), "render.near", minimum=0)
    far = values.get("far", 1e10)
    if isinstance(far, bool) or not isinstance(far, (int, float)) or not far > near:
        raise Invalid("render.far", f"{_show(far)} is not a number above render.near ({near:g})")
    background = values.get("background", [1.0, 1.0, 1.0])
    if not isinstance(background, list) or len(background) != 3:
        raise Invalid("render.background", f"{_show(background)} is not an RGB colour (3 numbers)")
    for i, channel in enumerate(background):
        as_number(channel, f"render.background[{i}]")
    for key in ("early_stop_eps", "weight_threshold", "cone_angle"):
        if key in values:
            as_number(values[key], f"render.{key}", minimum=0)
    ndc = values.get("ndc")
    if ndc is not None:
        ndc = as_dict(ndc, "render.ndc")
        _only_fields(ndc, NDC, "render.ndc", "NDC setting")
        as_number(entry(ndc, "focal", "render.ndc.focal"), "render.ndc.focal", above=0)
        as_int(entry(ndc, "width", "render.ndc.width"), "render.ndc.width", minimum=1)
        as_int(entry(ndc, "height", "render.ndc.height"), "render.ndc.height", minimum=1)
        as_number(ndc.get("near", 1.0), "render.ndc.near", above=0)


def _check_counters(state: dict[str, Any], where: str) -> None:
    for key in _COUNTERS:
        if key in state:
            as_int(state[key], f"{where}.{key}")
    for key in _AMOUNTS:
        if key in state:
            as_number(state[key], f"{where}.{key}", minimum=0)
    for key in _FLAGS:
        if key in state:
            as_bool(state[key], f"{where}.{key}")
    for key in _OPTIONAL_NUMBERS:
        if state.get(key) is not None:
            as_number(state[key], f"{where}.{key}")


def check_train_state(state: Any) -> None:
    """The `train_state` section: a JSON object whose known entries (the loop's counters, each
    strategy's under `strategies.<name>`, or all in one flat object as older checkpoints keep
    them) have the types the trainer reads; unknown entries are left as they are."""
    state = as_dict(state, "train_state")
    _check_counters(state, "train_state")
    strategies = state.get("strategies")
    if strategies is not None:
        for name, values in as_dict(strategies, "train_state.strategies").items():
            _check_counters(as_dict(values, f"train_state.strategies.{name}"), f"train_state.strategies.{name}")
