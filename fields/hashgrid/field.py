"""instant-ngp's hash-grid field: a multiresolution hash encoding and two small MLPs.

A world point x is normalized by the box to [0, 1]^3 (clamped) and encoded by
`cuda_ext.hash_encode`: L levels of F features each, level l a grid of
floor(base * b^l) cells per axis, b = (finest / base)^(1 / (L - 1)), its vertices' features
in a table of T = 2^k rows (dense where the level fits, hashed otherwise). Then

    h = MLP_density(enc(x))                      L*F -> hidden -> 1 + geo_features (ReLU, no bias)
    sigma = trunc_exp(h_0 + density_bias)        per world unit; 0 outside the box
    rgb = sigmoid(MLP_colour([h_1.., SH(d), code]))   -> hidden -> hidden -> 3

SH(d) is the real spherical-harmonic basis of `fields.decoders.sh_basis` up to order
`sh_degree` (3: 16 coefficients, what instant-ngp and tiny-cuda-nn call "degree 4"), `code`
a per-image appearance code (`fields.appearance`), fed to the colour MLP only, so codes change
the colour and never the density. `trunc_exp` is exp whose forward and gradient are clamped at
exp(15) (instant-ngp's and nerfstudio's truncated exponential; the clamped gradient still
passes through, so a density too high can come down).

Levels are the field's ranks (`fields.slimming`): at active rank r only the r coarsest levels
feed the density MLP (the finer ones scaled by `rank_epsilon`), and `slim(r)` keeps those
levels' tables and the matching columns of the first layer, a coarser but complete field.

The ray-marching step: the encoding has no one voxel size, so `resolution` (grid points per
axis, as a VM field's) names the grid whose voxels set it (`fields.base.Voxelized`): the trainer
passes the TensoRF schedule's starting grid, which follows the image size (55^3 for lego at
100x100, 128^3 at 800x800; `--grid-init`), and the field marches at `--step-ratio` of that voxel
for the whole run (it is not upsampled). Its finest level's cell (box / 512 on the CPU) would
march 4 to 5 times the samples for no gain at the sizes a CPU trains: on lego at 1/8 size,
box / 64 voxels gave the PSNR of the 1/512-of-the-diagonal step at 150 iterations in a third
of the time.

Two backends compute the same function family behind one interface (`backend` in the config):
"torch" (the native op, `cuda_ext.hash_encode`, and `nn.Linear` layers; CPU and CUDA) and
"tcnn" (tiny-cuda-nn's fused HashGrid and FullyFusedMLP, `fields.hashgrid.tcnn`; CUDA only,
half-precision MLPs). `from_scene` picks "tcnn" for a GPU run when `tinycudann` imports. The
two backends' state dicts differ (tiny-cuda-nn keeps each module's weights in one flat `params`
vector, with its own level layout), so a checkpoint loads only into the backend that wrote it.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from cuda_ext import hash_encode
from cuda_ext.reference import hash_level_resolutions

from ..appearance import APPEARANCE_CODE_DIM, LR_CODES, AppearanceCodes
from ..base import Field, SceneBox
from ..decoders import sh_basis
from ..slimming import RankOrdered
from ..tensorf.grid import INITIAL_VOXELS, resolution_for_voxels

__all__ = ["HashGridField", "trunc_exp", "BACKENDS", "LR_TABLE", "LR_MLP", "TABLE_INIT", "EXP_CLAMP"]

#: the backends of the encoding and MLPs (see the module docstring)
BACKENDS = ("torch", "tcnn")
#: Adam's base learning rates: hash table (instant-ngp's 1e-2 with eps 1e-15) and MLPs
LR_TABLE, LR_MLP = 1e-2, 1e-2
#: grid points per axis of the marching grid when none is given
DEFAULT_RESOLUTION = 128
#: the table starts uniform in [-TABLE_INIT, TABLE_INIT] (instant-ngp)
TABLE_INIT = 1e-4
#: `trunc_exp` clamps its argument here: sigma <= e^15 ~ 3.3e6 per world unit
EXP_CLAMP = 15.0


class _TruncExp(torch.autograd.Function):
    """exp(min(x, EXP_CLAMP)), its gradient that value whatever x (straight through the clamp)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = torch.exp(x.clamp(max=EXP_CLAMP))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (out,) = ctx.saved_tensors
        return grad * out


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """instant-ngp's truncated exponential of `x` (any shape): exp with forward and gradient
    clamped at exp(`EXP_CLAMP`)."""
    return _TruncExp.apply(x)


def _mlp(widths: list[int]) -> nn.Sequential:
    """Bias-free linear layers `widths[0] -> ... -> widths[-1]` with ReLUs between them."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(a, b, bias=False)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


def _tcnn_available() -> bool:
    try:
        import tinycudann  # noqa: F401
    except Exception:  # ImportError, or a build that fails to load its CUDA library
        return False
    return True


class HashGridField(RankOrdered, Field):
    """instant-ngp's hash-grid radiance field (see the module docstring).

    Args:
        aabb: `[2, 3]` box of the field (normalized to the unit cube per axis).
        resolution: grid points per axis `[X, Y, Z]` whose voxels set the marching step (see the
            module docstring; None: 128 per axis); the encoding does not depend on it.
        levels, features_per_level: L and F of the encoding.
        log2_table_size: log2 of T, the rows of each level's table.
        base_resolution, finest_resolution: cells per axis of the coarsest and the finest level.
        hidden: width of the MLPs' hidden layers; geo_features: the density MLP's outputs beyond
            the density, fed to the colour MLP.
        sh_degree: order of the view directions' spherical harmonics, 0 to 3 ((deg + 1)^2 inputs).
        density_bias: added to the raw density before `trunc_exp` (-1: nerfstudio's shift, so the
            untrained field is a thin fog of e^-1 per world unit).
        backend: "torch" or "tcnn" (see the module docstring).
        active_rank: render with the first this many levels (None: all; see `fields.slimming`).
        appearance_codes: per-image appearance codes (0: none; see `fields.appearance`) of width
            appearance_code_dim, fed to the colour MLP beside the geo features.
    """

    name = "hashgrid"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "bounded": {"log2_table_size": 17, "finest_resolution": 512},
        "bounded_gpu": {"log2_table_size": 19, "finest_resolution": 2048},
        "forward_facing": {"log2_table_size": 17, "finest_resolution": 512},
        "forward_facing_gpu": {"log2_table_size": 19, "finest_resolution": 2048},
    }

    def __init__(
        self,
        aabb: list[list[float]] | torch.Tensor,
        resolution: list[int] | None = None,
        levels: int = 16,
        features_per_level: int = 2,
        log2_table_size: int = 19,
        base_resolution: float = 16,
        finest_resolution: float = 2048,
        hidden: int = 64,
        geo_features: int = 15,
        sh_degree: int = 3,
        density_bias: float = -1.0,
        backend: str = "torch",
        active_rank: int | None = None,
        appearance_codes: int = 0,
        appearance_code_dim: int = APPEARANCE_CODE_DIM,
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"unknown hash-grid backend {backend!r} (known: {', '.join(BACKENDS)})")
        if not 0 <= int(sh_degree) <= 3:
            raise ValueError(f"sh_degree must be 0 to 3, got {sh_degree}")
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3).clone())
        self.resolution = [int(r) for r in (resolution if resolution is not None else [DEFAULT_RESOLUTION] * 3)]
        if len(self.resolution) != 3 or min(self.resolution) < 2:
            raise ValueError(f"resolution must be 3 grid point counts of at least 2, got {resolution}")
        self.levels, self.features_per_level = int(levels), int(features_per_level)
        self.log2_table_size = int(log2_table_size)
        self.base_resolution, self.finest_resolution = base_resolution, finest_resolution
        self.level_resolutions = hash_level_resolutions(self.levels, float(base_resolution), float(finest_resolution))
        self.hidden, self.geo_features, self.sh_degree = int(hidden), int(geo_features), int(sh_degree)
        self.density_bias = float(density_bias)
        self.backend = backend
        self.appearance_code_dim = int(appearance_code_dim)
        code_dim = self.appearance_code_dim if appearance_codes > 0 else 0
        colour_in = self.geo_features + (self.sh_degree + 1) ** 2 + code_dim
        encoded = self.levels * self.features_per_level
        if backend == "tcnn":
            from .tcnn import TcnnHashGrid

            self.tcnn = TcnnHashGrid(self.levels, self.features_per_level, self.log2_table_size, float(base_resolution),
                                     float(finest_resolution), self.hidden, 1 + self.geo_features, colour_in)  # fmt: skip
        else:
            self.table = nn.Parameter(torch.empty(self.levels, 1 << self.log2_table_size, self.features_per_level).uniform_(-TABLE_INIT, TABLE_INIT))
            self.density_net = _mlp([encoded, self.hidden, 1 + self.geo_features])
            self.colour_net = _mlp([colour_in, self.hidden, self.hidden, 3])
        self.codes = AppearanceCodes(int(appearance_codes), self.appearance_code_dim) if appearance_codes > 0 else None
        self._init_ranks(self.levels, active_rank)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def scene_kwargs(cls, scene: SceneBox, gpu: bool = False, **overrides: Any) -> dict[str, Any]:
        """The preset's arguments, with the "tcnn" backend on a GPU where tiny-cuda-nn imports.
        The trainer's `decoder` (TensoRF's) does not apply and is dropped; `resolution` (the
        marching grid) defaults to TensoRF's 128^3 voxels over the box."""
        overrides = {k: v for k, v in overrides.items() if k != "decoder"}
        kwargs = super().scene_kwargs(scene, gpu, **overrides)
        kwargs.setdefault("resolution", resolution_for_voxels(INITIAL_VOXELS, scene.aabb.float()))
        if gpu and "backend" not in kwargs and torch.cuda.is_available() and _tcnn_available():
            kwargs["backend"] = "tcnn"
        return kwargs

    @classmethod
    def state_shapes(cls, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """Built on the meta device for the "torch" backend; a "tcnn" field is built (on the
        GPU: tiny-cuda-nn sizes its flat parameter vectors itself)."""
        if cfg.get("backend", "torch") != "tcnn":
            return super().state_shapes(cfg)
        field = cls.from_config(cfg)
        return {name: tuple(value.shape) for name, value in field.state_dict().items()}

    def config(self) -> dict[str, Any]:
        return {
            "aabb": self.aabb.tolist(),
            "resolution": list(self.resolution),
            "levels": self.levels,
            "features_per_level": self.features_per_level,
            "log2_table_size": self.log2_table_size,
            "base_resolution": self.base_resolution,
            "finest_resolution": self.finest_resolution,
            "hidden": self.hidden,
            "geo_features": self.geo_features,
            "sh_degree": self.sh_degree,
            "density_bias": self.density_bias,
            "backend": self.backend,
            "appearance_codes": 0 if self.codes is None else self.codes.weight.shape[0],
            "appearance_code_dim": self.appearance_code_dim,
            **self.rank_config(),
        }

    @property
    def voxel_size(self) -> torch.Tensor:
        """Spacing of the marching grid's points per axis, `[3]` (as a VM field of `resolution`)."""
        return (self.aabb[1] - self.aabb[0]) / (torch.tensor(self.resolution, dtype=torch.float32, device=self.aabb.device) - 1)

    # --- the encoding and the MLPs --------------------------------------------------------
    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """World points `[N, 3]` -> box coordinates in [0, 1] `[N, 3]` (not clamped)."""
        return (x - self.aabb[0]) / (self.aabb[1] - self.aabb[0])

    def encode(self, xn: torch.Tensor) -> torch.Tensor:
        """Box coordinates `[N, 3]` -> the levels' features `[N, L * F]`, clamped to the box
        first, the levels above the active rank scaled by `rank_epsilon`."""
        xn = xn.clamp(0.0, 1.0)
        features = self.tcnn.encode(xn) if self.backend == "tcnn" else hash_encode(xn, self.table, self.base_resolution, self.finest_resolution)
        mask = self.rank_mask(self.levels, features)
        return features if mask is None else features * mask.repeat_interleave(self.features_per_level)

    def _density_head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density `[N]` (0 outside the box) and the density MLP's outputs `[N, 1 + geo]`."""
        xn = self.normalize(x)
        encoded = self.encode(xn)
        h = self.tcnn.density(encoded) if self.backend == "tcnn" else self.density_net(encoded)
        sigma = trunc_exp(h[:, 0] + self.density_bias)
        inside = ((xn >= 0.0) & (xn <= 1.0)).all(dim=-1)
        return torch.where(inside, sigma, torch.zeros_like(sigma)), h

    def _colour(self, h: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None) -> torch.Tensor:
        parts = [h[:, 1:], sh_basis(d, self.sh_degree)]
        if self.codes is not None:
            parts.append(self.codes(code, h.shape[0]))
        inputs = torch.cat(parts, dim=-1)
        if self.backend == "tcnn":
            return self.tcnn.colour(inputs)
        return torch.sigmoid(self.colour_net(inputs))

    # --- Field interface --------------------------------------------------------------------
    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self._density_head(x)[0]

    def query(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Density `[N]` and RGB `[N, 3]` from one encoding of `x [N, 3]` seen along `d [N, 3]`,
        coloured by the appearance `code` (see `fields.appearance`; ignored without codes)."""
        sigma, h = self._density_head(x)
        return sigma, self._colour(h, d, code)

    def radiance(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        return self.query(x, d, code)[1]

    def table_parameters(self) -> list[nn.Parameter]:
        """The hash tables (the "torch" backend's `table`, tiny-cuda-nn's encoding vector)."""
        return [self.tcnn.encoding.params] if self.backend == "tcnn" else [self.table]

    def mlp_parameters(self) -> list[nn.Parameter]:
        if self.backend == "tcnn":
            return [self.tcnn.density_net.params, self.tcnn.colour_net.params]
        return [*self.density_net.parameters(), *self.colour_net.parameters()]

    def param_groups(self) -> list[dict[str, Any]]:
        """instant-ngp's groups: "hash table" at `LR_TABLE` with Adam's eps 1e-15 (a table row
        sees few gradients; the default eps would swamp their small second moments), "mlp" at
        `LR_MLP`, and "codes" at `fields.appearance.LR_CODES` where the field has codes."""
        groups = [
            {"name": "hash table", "params": self.table_parameters(), "lr": LR_TABLE, "eps": 1e-15},
            {"name": "mlp", "params": self.mlp_parameters(), "lr": LR_MLP},
        ]
        if self.codes is not None:
            groups.append({"name": "codes", "params": [self.codes.weight], "lr": LR_CODES})
        return groups

    # --- slimming: levels are the ranks -----------------------------------------------------
    def _slimmed_config(self, rank: int) -> dict[str, Any]:
        """`rank` levels, the finest of them level `rank - 1` of this field: base * b^(rank - 1),
        unrounded, so that the levels' resolutions come out as this field's first ones."""
        if self.backend == "tcnn":
            raise ValueError("a tcnn hash-grid field cannot be slimmed: tiny-cuda-nn keeps its levels in one flat vector")
        if rank == self.levels:
            return {}
        base, finest = float(self.base_resolution), float(self.finest_resolution)
        growth = math.exp((math.log(finest) - math.log(base)) / (self.levels - 1))
        finest_kept = base * growth ** (rank - 1)
        if hash_level_resolutions(rank, base, finest_kept) != self.level_resolutions[:rank]:
            raise ValueError(f"cannot slim to rank {rank}: the kept levels' resolutions do not come out as this field's")
        return {"levels": rank, "finest_resolution": finest_kept}

    def _slimmed_state(self, rank: int) -> dict[str, torch.Tensor]:
        state = {name: tensor.detach() for name, tensor in self.state_dict().items()}
        state["table"] = state["table"][:rank]
        state["density_net.0.weight"] = state["density_net.0.weight"][:, : rank * self.features_per_level]
        return state
