"""The Field interface every scene representation implements, and its capability protocols.

A field class owns its construction: `presets` (named constructor arguments per kind of scene
and device) and `from_scene(scene)`; `param_groups()` names its optimizer groups with the base
learning rates the field was designed for (trainers only scale them). What some fields can do
beyond the interface is a protocol below, checked with `isinstance` by the code that needs it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = [
    "Field",
    "SceneBox",
    "Upsampleable",
    "Slimmable",
    "Placeable",
    "Voxelized",
    "Decoded",
    "Regularized",
    "Blurrable",
    "Densifiable",
    "SelfOccupying",
    "preset_name",
    "render_step_size",
]


class SceneBox(Protocol):
    """What a field needs to know of a scene to build itself (`data.Scene` is one)."""

    aabb: torch.Tensor
    ndc: bool


def preset_name(forward_facing: bool, gpu: bool) -> str:
    """Preset key for a kind of scene and device: "bounded", "forward_facing", "+_gpu"."""
    return ("forward_facing" if forward_facing else "bounded") + ("_gpu" if gpu else "")


class Field(nn.Module):
    """A radiance field living in an axis-aligned box.

    Subclasses implement `density` and `radiance` (or a fused `query`), `config`, and may add
    regularizers and capabilities. `aabb` is a buffer, `[2, 3]` (min, max) in world units.
    `code` selects per-image appearance codes (`fields.appearance`): it may change the colour,
    never the density; fields without codes ignore it.
    """

    #: registry name used in checkpoints and on the command line ("vm", "cp", ...)
    name: str = ""
    #: constructor arguments by preset name (see `preset_name`); a missing "_gpu" preset falls
    #: back to the CPU one
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    aabb: torch.Tensor

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Volume density sigma >= 0 (per world unit) at world points `x [N, 3]` -> `[N]`."""
        raise NotImplementedError

    def radiance(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """RGB in [0, 1] at points `x [N, 3]` seen along unit directions `d [N, 3]` -> `[N, 3]`,
        with appearance `code` (image indices `[N]`, codes `[N, E]`, or None: the mean code)."""
        raise NotImplementedError

    def query(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Density `[N]` and RGB `[N, 3]` at once. Fields may fuse the two."""
        return self.density(x), self.radiance(x, d, code)

    def regularization(self) -> dict[str, torch.Tensor]:
        """The field's own losses (L1, TV, ...), already weighted. Empty by default."""
        return {}

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups `{"name", "params", "lr"}` covering every parameter once, each with
        the base learning rate the field was designed for."""
        return [{"name": "all", "params": list(self.parameters()), "lr": 1e-3}]

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments; `type(self).from_config(cfg)` rebuilds the field."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "Field":
        return cls(**cfg)

    @classmethod
    def state_shapes(cls, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The shapes of `from_config(cfg).state_dict()`, found without allocating the field (it
        is built on the meta device), so that a loader can bound and check a saved state first.
        Fields whose constructor reads tensor values compute them instead."""
        with torch.device("meta"):
            field = cls.from_config(cfg)
        return {name: tuple(value.shape) for name, value in field.state_dict().items()}

    @classmethod
    def scene_kwargs(cls, scene: SceneBox, gpu: bool = False, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments for `scene` (its preset, then `overrides`), without the box."""
        presets = cls.presets
        name = preset_name(bool(scene.ndc), gpu)
        preset = presets.get(name, presets.get(preset_name(bool(scene.ndc), False), {}))
        return {**preset, **{k: v for k, v in overrides.items() if v is not None}}

    @classmethod
    def from_scene(cls, scene: SceneBox, gpu: bool = False, **overrides: Any) -> "Field":
        """A field filling `scene.aabb`, built from the preset for the scene and device."""
        return cls(aabb=scene.aabb.float(), **cls.scene_kwargs(scene, gpu, **overrides))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def nbytes(self) -> int:
        """Bytes of parameters and persistent buffers, as a checkpoint of this field stores them
        (non-persistent buffers, such as lookup tables rebuilt on load, are not counted)."""
        return sum(t.numel() * t.element_size() for t in self.state_dict().values())


@runtime_checkable
class Upsampleable(Protocol):
    """Grid fields whose factor resolution can grow and whose box can shrink. Both change the
    parameters' shapes without reading their values (so optimizer moments can follow)."""

    def upsample(self, resolution: list[int]) -> None: ...

    def shrink(self, aabb: torch.Tensor) -> None: ...


@runtime_checkable
class Slimmable(Protocol):
    """Rank-ordered fields that can render at, and be truncated to, a lower rank; components
    above `active_rank` are scaled by `rank_epsilon` (0 when rendering)."""

    ranks: int
    active_rank: int
    rank_epsilon: float

    def set_active_rank(self, rank: int) -> None: ...

    def slim(self, rank: int) -> Field: ...


@runtime_checkable
class Placeable(Protocol):
    """Fields whose structure is placed where a coarse estimate of the scene is occupied
    (Strivec's local tensors): built from an occupancy grid with `from_occupancy`, later
    `prune`d of what ends up empty (returns how many parts were removed)."""

    @classmethod
    def from_occupancy(cls, occupied: torch.Tensor, grid_aabb: torch.Tensor, **kwargs: Any) -> Field: ...

    def prune(self, occupied: torch.Tensor, grid_aabb: torch.Tensor) -> int: ...


@runtime_checkable
class Voxelized(Protocol):
    """Fields sampled on a grid: `voxel_size [3]` (world units) sets the ray-marching step."""

    @property
    def voxel_size(self) -> torch.Tensor: ...


@runtime_checkable
class Decoded(Protocol):
    """Fields whose colour is `decoder(appearance_features(x) [N, F], d)`: two such fields with
    the same decoder structure can share it and be distilled feature to feature."""

    decoder: nn.Module

    def appearance_features(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Regularized(Protocol):
    """Fields with weighted regularizers whose weights a training method sets (TensoRF's
    "l1", "tv_density", "tv_appearance")."""

    reg_weights: dict[str, float]


@runtime_checkable
class Blurrable(Protocol):
    """Fields whose factors can be Gaussian-filtered on the fly, the coarse-to-fine schedule of
    joint pose refinement (Cheng et al. 2024): after `set_blur(sigma)` every lookup sees each
    factor blurred along its axes by a Gaussian of `sigma` voxels (`voxel_size`), the density
    factors by `sigma * density_scale`, which is the field blurred by a 3D Gaussian (exactly
    for VM and CP; per local tensor for tri-vectors). `set_blur(None)` turns it off: the
    lookups then cost nothing more. Not saved: a loaded field is sharp."""

    def set_blur(self, sigma_voxels: float | None, density_scale: float = 1.0) -> None: ...


@runtime_checkable
class Densifiable(Protocol):
    """Fields made of primitives that a training method clones, splits and prunes (3DGS's
    adaptive density control): `keep_rows(rows)` keeps primitives `rows` (repeats clone them)
    without reading parameter values, so the optimizer's moments follow."""

    def keep_rows(self, rows: torch.Tensor) -> None: ...


@runtime_checkable
class SelfOccupying(Protocol):
    """Fields that know where they are empty without being sampled: `occupied_cells` gives the
    occupancy grid `[X, Y, Z]` bool over `aabb` directly (Gaussians: their cutoff boxes), in
    place of evaluating the density at every cell."""

    def occupied_cells(self, aabb: torch.Tensor, resolution: list[int], step_size: float, alpha_threshold: float) -> torch.Tensor: ...


def render_step_size(field: Field, step_ratio: float) -> float:
    """The ray-marching step for `field`: `step_ratio` of its mean voxel size, or 1/512 of its
    box diagonal for fields without voxels."""
    if isinstance(field, Voxelized):
        return float(field.voxel_size.mean()) * step_ratio
    return float((field.aabb[1] - field.aabb[0]).norm() / 512)
