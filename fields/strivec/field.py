"""Strivec: a sparse cloud of small local tri-vector (CP) tensors at several scales (Gao et al. 2023).

Scale s holds T_s axis-aligned cubes of half-size h_s around centres c_t, each a CP tensor of
three lines of L_s grid points along x, y, z. A point x mixes the K nearest cubes of the scale
that cover it, weighted w_k = (1 / d_k) / sum_j (1 / d_j) by distance to their centres, at local
coordinates u = (x - c_k) / h_s in [-1, 1]^3:

    f^s_r(x) = sum_k w_k a_kr(u_x) b_kr(u_y) c_kr(u_z)
    sigma(x) = distance_scale * softplus(sum_s sum_r f^s_r(x) [density lines] + density_shift)
    appearance(x) = sum_s B_s [f^s_r(x)]_r [appearance lines], then the decoder (as VM)

sigma is 0 where no cube of any scale covers x and outside `aabb`. Components are rank-ordered
(`fields.slimming.RankOrdered`): each scale's density and appearance components are a group.
Tensors are placed from an occupancy grid (`TriVecField.from_occupancy`) and pruned with it;
`fields.strivec.index` holds the placement and the lookup tables that find the covering cubes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from cuda_ext import trivec_neighbors, trivec_sample

from ..appearance import APPEARANCE_CODE_DIM
from ..base import Field, SceneBox
from ..factors import blur_factor, resize_line
from ..head import FeatureHead, head_state_shapes
from ..slimming import RankOrdered, active_components
from ..tensorf.grid import LR_FACTORS, LR_NETWORK, resolution_for_voxels
from .index import (
    LookupGrid,
    build_table,
    cubes_meet_box,
    lattice_centers,
    lookup_grid,
    nearest_to_occupied,
    occupied_counts,
    place_centers,
)

__all__ = ["TriVecField", "TriVecScale", "Slots", "scale_sizes"]

#: Strivec's half-sizes 0.3 / 0.15 / 0.075 and lattice spacings 0.4 / 0.2 / 0.1 in a box whose
#: longest side is 3.0, as fractions of that side; further scales halve again
HALF_SIZE_FRACTION = 0.3 / 3.0
SPACING_FRACTION = 0.4 / 3.0
#: density components of scales 0, 1, 2 (later scales repeat the last)
DENSITY_COMPONENTS = (32, 24, 16)


class Slots(NamedTuple):
    """Neighbour slots of N points in one scale: index `[N, K]` int64 (-1: empty), weights `[N, K]`,
    local coordinates `[N, K, 3]` (see `cuda_ext.trivec_neighbors`)."""

    index: torch.Tensor
    weights: torch.Tensor
    local: torch.Tensor


class TriVecScale(nn.Module):
    """One scale of the cloud.

    Buffers: `centers [T, 3]` (world units; NaN until placed or loaded), `table [C, M]` int32 (the
    lookup table over the field's box; not saved, rebuilt by `index`). Parameters:
    `density_lines [T, 3, R_d, L]`, `app_lines [T, 3, R_a, L]` (tensor, axis x/y/z, component,
    grid point), and `basis`, the appearance basis `R_a -> appearance_dim`.
    """

    centers: torch.Tensor
    table: torch.Tensor

    def __init__(
        self,
        num_tensors: int,
        half_size: float,
        spacing: float,
        length: int,
        density_components: int,
        appearance_components: int,
        appearance_dim: int,
        init_scale: float,
    ) -> None:
        super().__init__()
        self.half_size = float(half_size)
        self.spacing = float(spacing)
        self.register_buffer("centers", torch.full((num_tensors, 3), float("nan")))
        self.density_lines = nn.Parameter(init_scale * torch.randn(num_tensors, 3, density_components, length))
        self.app_lines = nn.Parameter(init_scale * torch.randn(num_tensors, 3, appearance_components, length))
        self.basis = nn.Linear(appearance_components, appearance_dim, bias=False)
        self.register_buffer("table", torch.full((1, 1), -1, dtype=torch.int32), persistent=False)
        self.grid = LookupGrid((0.0, 0.0, 0.0), 1.0, (1, 1, 1))

    @property
    def num_tensors(self) -> int:
        return self.centers.shape[0]

    @property
    def length(self) -> int:
        return self.density_lines.shape[3]

    @torch.no_grad()
    def index(self, aabb: torch.Tensor) -> None:
        """Rebuild the lookup table over `aabb [2, 3]`."""
        self.grid = lookup_grid(aabb, self.half_size)
        self.table = build_table(self.centers, self.half_size, self.grid)

    def neighbors(self, x: torch.Tensor, k: int) -> Slots:
        """The `k` nearest cubes covering each point of `x [N, 3]` (contiguous, the centres' dtype)."""
        g = self.grid
        return Slots(*trivec_neighbors(x, self.centers, self.half_size, self.table, g.origin, g.cell_size, g.resolution, k))

    @torch.no_grad()
    def keep(self, mask: torch.Tensor) -> None:
        """Keep the tensors where `mask [T]` (bool) holds (the table is rebuilt by `index`)."""
        self.centers = self.centers[mask]
        self.density_lines = nn.Parameter(self.density_lines.data[mask])
        self.app_lines = nn.Parameter(self.app_lines.data[mask])

    @torch.no_grad()
    def resample(self, length: int) -> None:
        """Resample every line to `length` grid points (linear, values at the ends)."""
        self.density_lines = nn.Parameter(_resized(self.density_lines.data, length))
        self.app_lines = nn.Parameter(_resized(self.app_lines.data, length))


def _resized(lines: torch.Tensor, length: int) -> torch.Tensor:
    """Lines `[T, 3, R, L]` resampled to `[T, 3, R, length]`."""
    if lines.numel() == 0:
        return lines.new_zeros(*lines.shape[:3], length)
    return resize_line(lines.reshape(1, -1, lines.shape[3], 1), length).reshape(*lines.shape[:3], length)


def _per_scale(name: str, value: Any, scales: int, default: list[Any]) -> list[Any]:
    """One value per scale: `value` repeated if it is a number, `default` if None, else a list of `scales`."""
    if value is None:
        return list(default)
    if isinstance(value, (int, float)):
        return [value] * scales
    values = list(value)
    if len(values) != scales:
        raise ValueError(f"{name} must give one value per scale ({scales}), got {values}")
    return values


def scale_sizes(box: torch.Tensor, scales: int, half_sizes: Any = None, spacings: Any = None) -> tuple[list[float], list[float]]:
    """Half-sizes and lattice spacings per scale (world units), Strivec's fractions of the longest
    side of `box [2, 3]` where not given."""
    longest = float((box[1] - box[0]).max())
    halves = _per_scale("half_sizes", half_sizes, scales, [longest * HALF_SIZE_FRACTION / 2**s for s in range(scales)])
    steps = _per_scale("spacings", spacings, scales, [longest * SPACING_FRACTION / 2**s for s in range(scales)])
    if not all(h > 0 for h in halves) or not all(s > 0 for s in steps):
        raise ValueError(f"half_sizes and spacings must be positive, got {halves} and {steps}")
    return [float(h) for h in halves], [float(s) for s in steps]


class TriVecField(RankOrdered, FeatureHead, Field):
    """Strivec's sparse multi-scale tri-vector field.

    Args:
        aabb: `[2, 3]` box of the field.
        resolution: grid points per axis over `aabb` that set the line lengths, as `upsample`
            does (default: TensoRF's 128^3 voxels); ignored when `lengths` is given.
        scales: number of scales.
        lengths: grid points per line, per scale (>= 2).
        num_tensors: tensors per scale, whose centres `load_state_dict` fills in; None places
            every point of each scale's lattice over `aabb` (use `from_occupancy` to place sparsely).
        half_sizes, spacings: per scale, world units; default: Strivec's 0.3 / 0.15 / 0.075 and
            0.4 / 0.2 / 0.1 for a box whose longest side is 3.0, scaled to `aabb`.
        density_components, appearance_components: components per scale (a number: every scale).
        appearance_dim, decoder, decoder_pe, appearance_codes, appearance_code_dim: appearance
            basis width, decoder and per-image appearance codes, as VM.
        density_shift, distance_scale: sigma = distance_scale * softplus(feature + density_shift).
        neighbors: K, the covering tensors mixed per scale.
        init_scale: standard deviation of the initial line values.
        active_rank: render with this many of the rank-ordered components (None: all of them).
    """

    name = "trivec"
    #: on the CPU Strivec's two coarser scales with fewer components than its 32/24 density and
    #: 48 appearance: 12/5 and 16/5, about half of VM's parameters on lego; on a GPU Strivec's
    #: three scales (32/24/16 density, 48 appearance). Forward-facing scenes: no PE, as VM there.
    presets = {
        "bounded": {"scales": 2, "density_components": [12, 5], "appearance_components": [16, 5], "decoder": "mlp"},
        "forward_facing": {"scales": 2, "density_components": [12, 5], "appearance_components": [16, 5], "decoder": "mlp", "decoder_pe": 0},
        "bounded_gpu": {"scales": 3, "density_components": [32, 24, 16], "appearance_components": 48, "decoder": "mlp"},
        "forward_facing_gpu": {"scales": 3, "density_components": [32, 24, 16], "appearance_components": 48, "decoder": "mlp", "decoder_pe": 0},
    }

    def __init__(
        self,
        aabb: list[list[float]] | torch.Tensor,
        resolution: list[int] | None = None,
        scales: int = 3,
        lengths: list[int] | int | None = None,
        num_tensors: list[int] | None = None,
        half_sizes: list[float] | float | None = None,
        spacings: list[float] | float | None = None,
        density_components: list[int] | int | None = None,
        appearance_components: list[int] | int = 48,
        appearance_dim: int = 27,
        decoder: str = "mlp",
        decoder_pe: int = 2,
        density_shift: float = -10.0,
        distance_scale: float = 25.0,
        neighbors: int = 4,
        init_scale: float = 0.2,
        active_rank: int | None = None,
        appearance_codes: int = 0,
        appearance_code_dim: int = APPEARANCE_CODE_DIM,
    ) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        if not isinstance(scales, int) or scales < 1 or not isinstance(neighbors, int) or neighbors < 1:
            raise ValueError(f"scales and neighbors must be positive integers, got {scales} and {neighbors}")
        self.neighbors = neighbors
        self.init_scale = init_scale
        self.reg_weights = {"l1": 0.0, "tv_density": 0.0, "tv_appearance": 0.0}
        self.blur: tuple[float, float] | None = None  # (density, appearance) sigmas in world units; see `set_blur`
        half, step = scale_sizes(self.aabb, scales, half_sizes, spacings)
        if lengths is None:
            lengths = self._lengths_for(resolution_for_voxels(128**3, self.aabb) if resolution is None else resolution, half)
        lengths = [int(v) for v in _per_scale("lengths", lengths, scales, [])]
        density = [int(v) for v in _per_scale("density_components", density_components, scales, _default_density(scales))]
        appearance = [int(v) for v in _per_scale("appearance_components", appearance_components, scales, [])]
        if min(lengths) < 2 or min(density) < 1 or min(appearance) < 1:
            raise ValueError(f"need lengths >= 2 and components >= 1, got {lengths}, {density}, {appearance}")
        centers = None if num_tensors is not None else [lattice_centers(self.aabb, s) for s in step]
        counts = [int(n) for n in _per_scale("num_tensors", num_tensors, scales, [len(c) for c in centers or []])]
        self.scales = nn.ModuleList(
            TriVecScale(n, h, s, length, rd, ra, appearance_dim, init_scale)
            for n, h, s, length, rd, ra in zip(counts, half, step, lengths, density, appearance)
        )
        self._init_head(appearance_dim, decoder, decoder_pe, density_shift, distance_scale, appearance_codes, appearance_code_dim)
        self._init_ranks(max(density), active_rank)
        if centers is not None:
            self._place(centers)
        self.register_load_state_dict_post_hook(_reindex_after_load)

    @classmethod
    def from_occupancy(cls, occupied: torch.Tensor, grid_aabb: torch.Tensor, **kwargs: Any) -> TriVecField:
        """A field (on the CPU) with, per scale, a tensor at every lattice point whose lattice cell
        holds an occupied cell (lattice over `grid_aabb`; half-sizes and spacings default to
        Strivec's fractions of its longest side).

        Args:
            occupied: `[X, Y, Z]` bool occupancy over `grid_aabb [2, 3]` (as `render.OccupancyGrid`).
            kwargs: constructor arguments (`aabb` defaults to `grid_aabb`; `num_tensors` is set here).
        """
        grid_aabb = torch.as_tensor(grid_aabb, dtype=torch.float32).reshape(2, 3).cpu()
        if not bool(occupied.any()):
            raise ValueError("cannot place tensors from an empty occupancy grid")
        kwargs.setdefault("aabb", grid_aabb)
        half, step = scale_sizes(grid_aabb, kwargs.get("scales", 3), kwargs.get("half_sizes"), kwargs.get("spacings"))
        centers = [place_centers(occupied.cpu(), grid_aabb, s) for s in step]
        field = cls(**{**kwargs, "half_sizes": half, "spacings": step, "num_tensors": [len(c) for c in centers]})
        field._place(centers)
        return field

    @classmethod
    def state_shapes(cls, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The shapes of `from_config(cfg).state_dict()` for a saved config (`num_tensors` and
        `lengths` per scale, as `config()` writes them), without allocating the field: the
        constructor reads the box's size, so the shapes are counted here (the decoder's and the
        codes' by `head_state_shapes`)."""
        scales = cfg.get("scales", 3)
        if not isinstance(scales, int) or scales < 1:
            raise ValueError(f"scales must be a positive integer, got {scales!r}")
        if not isinstance(cfg.get("num_tensors"), list) or cfg.get("lengths") is None:
            raise ValueError("a saved trivec config lists num_tensors (and lengths) per scale")
        counts = [int(v) for v in _per_scale("num_tensors", cfg["num_tensors"], scales, [])]
        lengths = [int(v) for v in _per_scale("lengths", cfg["lengths"], scales, [])]
        density = [int(v) for v in _per_scale("density_components", cfg.get("density_components"), scales, _default_density(scales))]
        appearance = [int(v) for v in _per_scale("appearance_components", cfg.get("appearance_components", 48), scales, [])]
        appearance_dim = int(cfg.get("appearance_dim", 27))
        shapes: dict[str, tuple[int, ...]] = {"aabb": (2, 3)}
        for i, (count, length, rd, ra) in enumerate(zip(counts, lengths, density, appearance)):
            shapes[f"scales.{i}.density_lines"] = (count, 3, rd, length)
            shapes[f"scales.{i}.app_lines"] = (count, 3, ra, length)
            shapes[f"scales.{i}.centers"] = (count, 3)
            shapes[f"scales.{i}.basis.weight"] = (appearance_dim, ra)
        return {**shapes, **head_state_shapes(cfg)}

    # --- placement and lookup -----------------------------------------------------------
    @torch.no_grad()
    def _place(self, centers: Sequence[torch.Tensor]) -> None:
        """Set every scale's centres (`[T_s, 3]` each) and rebuild the lookup tables."""
        for scale, c in zip(self.scales, centers):
            scale.centers.copy_(c)
        self._index()

    def _index(self) -> None:
        for scale in self.scales:
            scale.index(self.aabb)

    @torch.no_grad()
    def prune(self, occupied: torch.Tensor, grid_aabb: torch.Tensor) -> int:
        """Remove the tensors whose cube holds no occupied cell of `occupied [X, Y, Z]` over
        `grid_aabb [2, 3]` (a scale left empty keeps its tensor nearest to the occupied cells).

        Returns the number of tensors removed. Parameters are replaced: rebuild the optimizer.
        """
        if not bool(occupied.any()):
            raise ValueError("cannot prune with an empty occupancy grid: every tensor would go")
        removed = 0
        for scale in self.scales:
            keep = occupied_counts(scale.centers, scale.half_size, occupied, grid_aabb).to(scale.centers.device) > 0
            if scale.num_tensors > 0 and not bool(keep.any()):
                keep[nearest_to_occupied(scale.centers, occupied, grid_aabb)] = True
            removed += int((~keep).sum())
            scale.keep(keep)
        self._index()
        return removed

    def _slots(self, x: torch.Tensor) -> list[Slots]:
        x = x.contiguous()
        return [scale.neighbors(x, self.neighbors) for scale in self.scales]

    def _masked(self, lines: torch.Tensor, every_line: bool = False) -> torch.Tensor:
        """`lines [T, 3, R, L]` with the components above the active rank scaled by `rank_epsilon`:
        their x lines only (so each product is scaled once), or with `every_line` all three."""
        mask = self.rank_mask(lines.shape[2], lines)
        if mask is None:
            return lines
        scale = mask.expand(3, -1) if every_line else torch.cat([mask[None], torch.ones_like(mask).expand(2, -1)])
        return lines * scale[None, :, :, None]

    def set_blur(self, sigma_voxels: float | None, density_scale: float = 1.0) -> None:
        """Blur every local tensor's lines by a Gaussian of `sigma_voxels` voxels of the finest
        scale (`voxel_size`; the same width in world units at every scale), the density lines by
        `sigma_voxels * density_scale`; None: sharp again (`fields.base.Blurrable`)."""
        if sigma_voxels is None:
            self.blur = None
            return
        world = sigma_voxels * float(self.voxel_size[0])
        self.blur = (world * density_scale, world)

    def _blurred(self, scale: TriVecScale, lines: torch.Tensor, density: bool) -> torch.Tensor:
        """`lines [T, 3, R, L]` of `scale` as lookups see them: blurred along their grid points
        (spacing 2 h_s / (L_s - 1)) while `set_blur` is active, else themselves."""
        sigma = None if self.blur is None else self.blur[0 if density else 1]
        if not sigma:
            return lines
        return blur_factor(lines, sigma * (scale.length - 1) / (2.0 * scale.half_size), (3,))

    # --- Field interface ---------------------------------------------------------------
    def _sigma(self, x: torch.Tensor, slots: list[Slots]) -> torch.Tensor:
        feature = sum(
            trivec_sample(self._masked(self._blurred(s, s.density_lines, True)), *sl, reduce=True) for s, sl in zip(self.scales, slots)
        )
        covered = torch.stack([sl.index[:, 0] >= 0 for sl in slots]).any(dim=0)
        inside = ((x >= self.aabb[0]) & (x <= self.aabb[1])).all(dim=-1)
        sigma = self._activate_density(feature)
        return torch.where(covered & inside, sigma, torch.zeros_like(sigma))

    def _appearance(self, slots: list[Slots]) -> torch.Tensor:
        features = sum(
            s.basis.weight @ trivec_sample(self._masked(self._blurred(s, s.app_lines, False)), *sl, reduce=False)
            for s, sl in zip(self.scales, slots)
        )
        return features.t()

    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self._sigma(x, self._slots(x))

    def appearance_features(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder input at world points `[N, 3]` -> `[N, appearance_dim]`."""
        return self._appearance(self._slots(x))

    def radiance(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        return self._decode(self.appearance_features(x), d, code)

    def query(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Density `[N]` and RGB `[N, 3]`, finding the covering tensors once."""
        slots = self._slots(x)
        return self._sigma(x, slots), self._decode(self._appearance(slots), d, code)

    def regularization(self) -> dict[str, torch.Tensor]:
        """"l1" on the density lines, every line of a component above the active rank scaled by
        `rank_epsilon` (unlike sampling, where one line carries the mask: an unscaled L1 would
        pull the other two lines of a waiting component to zero, and a product of lines at zero
        cannot start learning when its rank comes); the TV weights are accepted and add nothing."""
        w = self.reg_weights
        lines = [s.density_lines for s in self.scales if s.density_lines.numel() > 0]
        if w["l1"] > 0 and lines:
            return {"l1": w["l1"] * sum(self._masked(line, every_line=True).abs().mean() for line in lines)}
        return {}

    def param_groups(self) -> list[dict[str, Any]]:
        """TensoRF's groups and rates: "factors" (the lines) at 0.02, "network" (bases, decoder) at
        1e-3, and "codes" (the appearance codes, if any)."""
        return [
            {"name": "factors", "params": self.factor_parameters(), "lr": LR_FACTORS},
            {"name": "network", "params": [s.basis.weight for s in self.scales] + list(self.decoder.parameters()), "lr": LR_NETWORK},
            *self._codes_groups(),
        ]

    @classmethod
    def scene_kwargs(cls, scene: SceneBox, gpu: bool = False, **overrides: Any) -> dict[str, Any]:
        """The preset's arguments, with per-scale half-sizes and lattice spacings taken from the
        scene's box (Strivec's fractions of its longest side), unless given."""
        kwargs = super().scene_kwargs(scene, gpu, **overrides)
        half, step = scale_sizes(scene.aabb.float(), kwargs.get("scales", 3), kwargs.get("half_sizes"), kwargs.get("spacings"))
        return {**kwargs, "half_sizes": half, "spacings": step}

    def factor_parameters(self) -> list[nn.Parameter]:
        return [p for s in self.scales for p in (s.density_lines, s.app_lines)]

    def config(self) -> dict[str, Any]:
        return {
            "aabb": self.aabb.tolist(),
            "scales": len(self.scales),
            "lengths": self.resolution,
            "num_tensors": [s.num_tensors for s in self.scales],
            "half_sizes": [s.half_size for s in self.scales],
            "spacings": [s.spacing for s in self.scales],
            "density_components": [s.density_lines.shape[2] for s in self.scales],
            "appearance_components": [s.app_lines.shape[2] for s in self.scales],
            **self._head_config(),
            "neighbors": self.neighbors,
            "init_scale": self.init_scale,
            **self.rank_config(),
        }

    # --- slimming -----------------------------------------------------------------------
    def _slimmed_config(self, rank: int) -> dict[str, Any]:
        return {
            "density_components": [active_components(rank, s.density_lines.shape[2], self.ranks) for s in self.scales],
            "appearance_components": [active_components(rank, s.app_lines.shape[2], self.ranks) for s in self.scales],
        }

    def _slimmed_state(self, rank: int) -> dict[str, torch.Tensor]:
        """State dict with every scale's lines cut to their first components at `rank`, and its
        basis to the columns of the appearance components kept."""
        state = {name: tensor.detach() for name, tensor in self.state_dict().items()}
        for i, scale in enumerate(self.scales):
            density = active_components(rank, scale.density_lines.shape[2], self.ranks)
            appearance = active_components(rank, scale.app_lines.shape[2], self.ranks)
            state[f"scales.{i}.density_lines"] = scale.density_lines.detach()[:, :, :density]
            state[f"scales.{i}.app_lines"] = scale.app_lines.detach()[:, :, :appearance]
            state[f"scales.{i}.basis.weight"] = scale.basis.weight.detach()[:, :appearance]
        return state

    # --- grid geometry ------------------------------------------------------------------
    @property
    def resolution(self) -> list[int]:
        """Grid points per line, per scale (L_s)."""
        return [s.length for s in self.scales]

    @property
    def voxel_size(self) -> torch.Tensor:
        """Grid spacing 2 h_s / (L_s - 1) of the finest scale's lines (smallest h_s), as `[3]`."""
        finest = min(self.scales, key=lambda s: s.half_size)
        return torch.full((3,), 2.0 * finest.half_size / (finest.length - 1), dtype=torch.float32, device=self.aabb.device)

    def _lengths_for(self, resolution: Sequence[int], half_sizes: Sequence[float]) -> list[int]:
        """Line lengths max(2, round(2 h_s / v) + 1) for the voxel size v of `resolution [3]`
        grid points over `aabb`."""
        res = torch.tensor([int(r) for r in resolution], dtype=torch.float64)
        if res.shape != (3,) or bool((res < 2).any()):
            raise ValueError(f"resolution must be 3 grid-point counts >= 2, got {list(resolution)}")
        voxel = float(((self.aabb[1] - self.aabb[0]).double().cpu() / (res - 1)).mean())
        return [max(2, round(2.0 * h / voxel) + 1) for h in half_sizes]

    @torch.no_grad()
    def upsample(self, resolution: list[int]) -> None:
        """Resample every scale's lines to the voxel size of `resolution [X, Y, Z]` grid points over
        `aabb` (lengths max(2, round(2 h_s / v) + 1)). Parameters are replaced: rebuild the optimizer."""
        for scale, length in zip(self.scales, self._lengths_for(resolution, [s.half_size for s in self.scales])):
            scale.resample(length)

    @torch.no_grad()
    def shrink(self, aabb: torch.Tensor) -> None:
        """Clip the field's box to `aabb [2, 3]`, drop the tensors whose cube no longer meets it and
        rebuild the lookup tables (the field is unchanged inside the new box)."""
        aabb = aabb.to(self.aabb)
        box = torch.stack([torch.maximum(aabb[0], self.aabb[0]), torch.minimum(aabb[1], self.aabb[1])])
        if not bool((box[0] < box[1]).all()):
            raise ValueError(f"cannot shrink to {aabb.tolist()}: it does not overlap the field's box {self.aabb.tolist()}")
        for scale in self.scales:
            scale.keep(cubes_meet_box(scale.centers, scale.half_size, box))
        self.aabb.copy_(box)
        self._index()


def _default_density(scales: int) -> list[int]:
    return [DENSITY_COMPONENTS[min(s, len(DENSITY_COMPONENTS) - 1)] for s in range(scales)]


def _reindex_after_load(field: TriVecField, incompatible_keys: Any) -> None:
    """`load_state_dict` post-hook: the loaded centres and box need new lookup tables."""
    field._index()
