"""Gaussian splat tensors: N anisotropic 3D Gaussians rendered as a volume through the ray
marcher, their view-dependent colour a CP-factorized tensor of spherical-harmonic coefficients.

Density at x is the sum of the Gaussians, sigma(x) = sum_i sigma_i exp(-q_i(x) / 2) with
q_i = (x - mu_i)^T Sigma_i^-1 (x - mu_i), cut at q_i > cutoff^2; Sigma_i = R_i S_i^2 R_i^T from a
unit quaternion and standard deviations s = sqrt(exp(2 log_scale) + min_scale^2) (the floor keeps
every Gaussian thicker than a quarter of a lookup cell, so the marcher's steps resolve it).

The SH coefficients `[N, K, 3]` are sum_r a_r (x) b_r (x) c_r over the Gaussian, coefficient and
channel modes (`colour_gaussian [N, R]`, `colour_basis [K, R]`, `colour_channel [3, R]`), rank-
ordered, so the field slims like SlimmeRF (`fields.slimming`). The colour at x seen along d is
clamp(0.5 + sum_r f_r(x) (Y(d) b_r) c_r, 0, 1), f(x) the density-weighted mean of the Gaussians'
a-rows there (3DGS clamps each Gaussian's colour instead: the two differ only where a Gaussian's
own colour leaves [0, 1]).

Opacity: each Gaussian keeps a 3DGS opacity logit; its peak density is
sigma_i = -log(1 - o_i) / (sqrt(2 pi) * s_i), s_i the geometric mean of its standard deviations,
so a ray through the centre of an isotropic Gaussian is stopped with probability o_i, as a splat
rasterizer draws it (up to the 0.27% of optical depth beyond a 3-sigma cutoff). For an anisotropic one the ray's optical depth scales with the
standard deviation along the ray over s_i: flat Gaussians seen face-on are more transparent here
than as splats, seen edge-on more opaque.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cuda_ext import gaussian_mix

from ..appearance import APPEARANCE_CODE_DIM, LR_CODES, AppearanceCodes
from ..base import Field, SceneBox
from ..decoders import sh_basis
from ..slimming import RankOrdered, active_components
from .index import CellLists, box_occupancy, cell_grid, lists_for
from .ply import Splats

__all__ = ["GaussianField", "quaternion_to_rotation", "spacing", "MIN_SCALE_CELLS", "INDEX_RESOLUTION"]

#: the floor of the Gaussians' standard deviations, in lookup cells
MIN_SCALE_CELLS = 0.25
#: lookup cells along the box's longest axis when the trainer gives no resolution
INDEX_RESOLUTION = 64
#: added to the density before it divides the mixed colour features (world units)
MIX_EPSILON = 1e-6
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def quaternion_to_rotation(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices `[N, 3, 3]` of quaternions `[N, 4]` (w, x, y, z; any nonzero length,
    normalized here), as 3DGS stores rotations."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)  # fmt: skip


class GaussianField(RankOrdered, Field):
    """Gaussian splat tensors (see the module docstring).

    Args:
        aabb: `[2, 3]` box; Gaussians start uniformly inside it, and the lookup grid covers it.
        resolution: lookup cells per axis `[X, Y, Z]` (cubic cells; see `index.cell_grid`).
        num_gaussians: N; colour_components: R, the CP rank of the SH coefficients;
        sh_degree: 0 to 3 (K = (degree + 1)^2 coefficients per channel).
        cutoff: a Gaussian is zero beyond this many standard deviations.
        min_scale: floor of the standard deviations (None: `MIN_SCALE_CELLS` cells).
        init_opacity: the starting opacity of every Gaussian; active_rank: see `fields.slimming`.
        appearance_codes: per-image appearance codes (0: none; see `fields.appearance`) of width
            appearance_code_dim; a code scales and offsets the three colour channels (an
            exposure and white-balance change, `appearance_affine`, identity at the zero code).
    """

    name = "gaussians"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "bounded": {"num_gaussians": 20000, "colour_components": 16, "sh_degree": 3},
        "forward_facing": {"num_gaussians": 20000, "colour_components": 16, "sh_degree": 3},
    }

    def __init__(
        self,
        aabb: list[list[float]] | torch.Tensor,
        resolution: list[int],
        num_gaussians: int = 20000,
        colour_components: int = 16,
        sh_degree: int = 3,
        cutoff: float = 3.0,
        min_scale: float | None = None,
        init_opacity: float = 0.1,
        active_rank: int | None = None,
        appearance_codes: int = 0,
        appearance_code_dim: int = APPEARANCE_CODE_DIM,
    ) -> None:
        super().__init__()
        box = torch.as_tensor(aabb, dtype=torch.float32, device="cpu").reshape(2, 3).clone()
        self.register_buffer("aabb", torch.tensor(box.tolist()))
        self.resolution = [int(r) for r in resolution]
        self.grid = cell_grid(box, self.resolution)
        self.sh_degree = int(sh_degree)
        self.cutoff = float(cutoff)
        self.min_scale = float(min_scale) if min_scale is not None else MIN_SCALE_CELLS * self.grid.cell_size
        self.init_opacity = float(init_opacity)
        n, r, k = int(num_gaussians), int(colour_components), (self.sh_degree + 1) ** 2
        low, size = torch.tensor(box[0].tolist()), torch.tensor((box[1] - box[0]).tolist())
        start_scale = max(self.grid.cell_size, 2.0 * self.min_scale)
        self.means = nn.Parameter(low + torch.rand(n, 3) * size)
        self.log_scales = nn.Parameter(torch.full((n, 3), 0.5 * math.log(start_scale**2 - self.min_scale**2)))
        self.quats = nn.Parameter(F.normalize(torch.randn(n, 4), dim=-1))
        self.opacity_logits = nn.Parameter(torch.full((n,), math.log(self.init_opacity / (1.0 - self.init_opacity))))
        self.colour_gaussian = nn.Parameter(0.1 * torch.randn(n, r))
        self.colour_basis = nn.Parameter(torch.randn(k, r) / math.sqrt(r))
        self.colour_channel = nn.Parameter(torch.randn(3, r) / math.sqrt(r))
        self.appearance_code_dim = int(appearance_code_dim)
        if appearance_codes > 0:
            self.codes = AppearanceCodes(int(appearance_codes), self.appearance_code_dim)
            self.appearance_affine = nn.Linear(self.appearance_code_dim, 6, bias=False)
            nn.init.normal_(self.appearance_affine.weight, std=0.01)
        self._lists: CellLists | None = None
        self._init_ranks(r, active_rank)

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def scene_kwargs(cls, scene: SceneBox, gpu: bool = False, **overrides: Any) -> dict[str, Any]:
        """The preset's arguments. The colour is the SH coefficients themselves, so the trainer's
        `decoder` does not apply and is dropped; `resolution` defaults to `INDEX_RESOLUTION`
        cells along the longest axis."""
        overrides = {k: v for k, v in overrides.items() if k != "decoder"}
        kwargs = super().scene_kwargs(scene, gpu, **overrides)
        kwargs.setdefault("resolution", cls.index_resolution(scene.aabb))
        return kwargs

    @staticmethod
    def index_resolution(aabb: torch.Tensor) -> list[int]:
        """Lookup cells per axis over `aabb [2, 3]`: `INDEX_RESOLUTION` along the longest axis."""
        size = (aabb[1] - aabb[0]).float()
        return [max(1, round(INDEX_RESOLUTION * float(s / size.max()))) for s in size]

    @classmethod
    def state_shapes(cls, cfg: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n, r, k = int(cfg["num_gaussians"]), int(cfg["colour_components"]), (int(cfg.get("sh_degree", 3)) + 1) ** 2
        shapes = {
            "aabb": (2, 3), "means": (n, 3), "log_scales": (n, 3), "quats": (n, 4), "opacity_logits": (n,),
            "colour_gaussian": (n, r), "colour_basis": (k, r), "colour_channel": (3, r),
        }  # fmt: skip
        codes, dim = int(cfg.get("appearance_codes", 0)), int(cfg.get("appearance_code_dim", APPEARANCE_CODE_DIM))
        if codes > 0:
            shapes.update({"codes.weight": (codes, dim), "appearance_affine.weight": (6, dim)})
        return shapes

    def config(self) -> dict[str, Any]:
        return {
            "aabb": self.aabb.tolist(),
            "resolution": list(self.resolution),
            "num_gaussians": self.num_gaussians,
            "colour_components": int(self.colour_gaussian.shape[1]),
            "sh_degree": self.sh_degree,
            "cutoff": self.cutoff,
            "min_scale": self.min_scale,
            "init_opacity": self.init_opacity,
            "appearance_codes": 0 if getattr(self, "codes", None) is None else self.codes.weight.shape[0],
            "appearance_code_dim": self.appearance_code_dim,
            **self.rank_config(),
        }

    @property
    def num_gaussians(self) -> int:
        return int(self.means.shape[0])

    # --- the Gaussians ----------------------------------------------------------------------
    def scales(self) -> torch.Tensor:
        """Standard deviations `[N, 3]` along the Gaussians' axes (floored at `min_scale`)."""
        return torch.sqrt(torch.exp(2.0 * self.log_scales) + self.min_scale**2)

    def opacities(self) -> torch.Tensor:
        """3DGS opacities `[N]` in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    def peak_densities(self, scales: torch.Tensor) -> torch.Tensor:
        """sigma_i `[N]` (per world unit) from the opacities and standard deviations `[N, 3]`."""
        return F.softplus(self.opacity_logits) / (_SQRT_2PI * scales.prod(dim=-1) ** (1.0 / 3.0))

    def sh_coefficients(self) -> torch.Tensor:
        """The SH coefficients `[N, K, 3]` at the active rank: sum_r a_r (x) b_r (x) c_r."""
        return torch.einsum("nr,kr,cr->nkc", self.colour_gaussian, self.colour_basis, self._channel())

    def _channel(self) -> torch.Tensor:
        """`colour_channel [3, R]` with the components above the active rank scaled by `rank_epsilon`."""
        mask = self.rank_mask(self.colour_channel.shape[1], self.colour_channel)
        return self.colour_channel if mask is None else self.colour_channel * mask

    def _geometry(self) -> tuple[torch.Tensor, torch.Tensor, CellLists]:
        """Precision factors `[N, 3, 3]` (S^-1 R^T), peak densities `[N]`, and the lookup lists,
        rebuilt when a Gaussian has left the box it was listed for (see `index.lists_for`)."""
        scales, rotations = self.scales(), quaternion_to_rotation(self.quats)
        with torch.no_grad():
            half = self._half_extents(scales, rotations)
            means = self.means.detach()
            if self._lists is None or not self._lists.covers(means, half):
                self._lists = lists_for(means.clone(), half, self.aabb, self.grid.cell_size)
        precision = (rotations / scales[:, None, :]).transpose(1, 2).contiguous()
        return precision, self.peak_densities(scales), self._lists

    def _half_extents(self, scales: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
        """Half sides `[N, 3]` of the axis-aligned boxes of the Gaussians' cutoff ellipsoids."""
        return self.cutoff * torch.sqrt((rotations.square() * scales.square()[:, None, :]).sum(-1))

    @torch.no_grad()
    def occupied_cells(self, aabb: torch.Tensor, resolution: list[int], step_size: float, alpha_threshold: float) -> torch.Tensor:
        """The occupancy grid `[X, Y, Z]` bool over `aabb` that the Gaussians' cutoff boxes touch,
        of the Gaussians whose peak would stop more than `alpha_threshold` of the light in a
        render step of `step_size` (exact where the density is one Gaussian's; faint ones that
        only add up with others are left out). Far cheaper than evaluating the density at every
        cell, as `render.OccupancyGrid.update` does for the other fields."""
        scales = self.scales()
        visible = 1.0 - torch.exp(-self.peak_densities(scales) * step_size) > alpha_threshold
        rotations = quaternion_to_rotation(self.quats[visible])
        return box_occupancy(self.means[visible], self._half_extents(scales[visible], rotations), aabb, resolution)

    def _mix(self, x: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        precision, peaks, lists = self._geometry()
        grid = lists.grid
        return gaussian_mix(
            x.contiguous(), self.means, precision, peaks, features, lists.start, lists.gaussians,
            grid.origin, grid.cell_size, grid.resolution, self.cutoff,
        )  # fmt: skip

    # --- Field interface ----------------------------------------------------------------------
    def density(self, x: torch.Tensor) -> torch.Tensor:
        return self._mix(x, x.new_zeros(self.num_gaussians, 0))[0]

    def query(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Density `[N]` and RGB `[N, 3]` from one pass over the Gaussians, the colour changed
        by the appearance `code` where the field has codes."""
        sigma, mixed = self._mix(x, self.colour_gaussian)
        features = mixed / (sigma[:, None] + MIX_EPSILON)
        view = sh_basis(d, self.sh_degree) @ self.colour_basis  # [N, R]
        rgb = 0.5 + (features * view) @ self._channel().t()
        codes = getattr(self, "codes", None)
        if codes is not None:
            scale, offset = self.appearance_affine(codes(code, x.shape[0])).split(3, dim=-1)
            rgb = rgb * (1.0 + scale) + offset
        return sigma, rgb.clamp(0.0, 1.0)

    def radiance(self, x: torch.Tensor, d: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        return self.query(x, d, code)[1]

    def param_groups(self) -> list[dict[str, Any]]:
        """gsplat's groups and rates: means at 1.6e-4 of the box diagonal, scales 5e-3,
        rotations 1e-3, opacities 5e-2; the three colour factors at 5e-3; codes (`_codes_groups`)."""
        diagonal = float((self.aabb[1] - self.aabb[0]).norm())
        return [
            {"name": "means", "params": [self.means], "lr": 1.6e-4 * diagonal},
            {"name": "scales", "params": [self.log_scales], "lr": 5e-3},
            {"name": "quats", "params": [self.quats], "lr": 1e-3},
            {"name": "opacities", "params": [self.opacity_logits], "lr": 5e-2},
            {"name": "colour", "params": [self.colour_gaussian, self.colour_basis, self.colour_channel], "lr": 5e-3},
            *self._codes_groups(),
        ]

    def _codes_groups(self) -> list[dict[str, Any]]:
        """The appearance codes at `LR_CODES` and their colour transform at 1e-3, if the field has codes."""
        if getattr(self, "codes", None) is None:
            return []
        return [
            {"name": "codes", "params": [self.codes.weight], "lr": LR_CODES},
            {"name": "appearance", "params": [self.appearance_affine.weight], "lr": 1e-3},
        ]

    @property
    def voxel_size(self) -> torch.Tensor:
        """The lookup cell's side per axis `[3]` (the marcher's step is a fraction of it)."""
        return torch.full((3,), self.grid.cell_size, device=self.aabb.device)

    # --- densification ---------------------------------------------------------------------------
    #: the parameters with a row per Gaussian (densification gathers them; the rest are shared)
    PER_GAUSSIAN = ("means", "log_scales", "quats", "opacity_logits", "colour_gaussian")

    @torch.no_grad()
    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep the Gaussians `rows [M]` (int64, repeats allowed: a repeated row is a clone), in
        that order. Reads no parameter values beyond the gather, so `training.optim.restructure`
        applies it to Adam's moments too."""
        for name in self.PER_GAUSSIAN:
            setattr(self, name, nn.Parameter(getattr(self, name).data[rows].clone()))
        self._lists = None

    @torch.no_grad()
    def place(self, points: torch.Tensor, colours: torch.Tensor | None = None, opacity: float | None = None) -> float:
        """Make the field one Gaussian per point of `points [P, 3]`, isotropic, as wide as the
        points' median nearest-neighbour distance (`spacing`), with `opacity` (None: keep each
        one's) and, given `colours [P, 3]` in [0, 1], those as their view-independent colour:
        the first three colour components become the DC colour of each channel (so rank 3 and
        up show it) and the others start at 0. Returns the width."""
        count = points.shape[0]
        rows = torch.arange(count, device=self.means.device) % self.num_gaussians
        self.keep_rows(rows)
        self.means.copy_(points)
        width = spacing(points)
        self.set_scales(rows, torch.full((count, 3), width, device=points.device))
        if opacity is not None:
            self.opacity_logits.fill_(math.log(opacity / (1.0 - opacity)))
        if colours is not None:
            components = self.colour_gaussian.shape[1]
            if components < 3:
                raise ValueError(f"placing coloured Gaussians needs 3 colour components or more, the field has {components}")
            dc = sh_basis(torch.tensor([[0.0, 0.0, 1.0]]), 0)[0, 0]
            self.colour_gaussian.zero_()
            self.colour_gaussian[:, :3] = (colours.to(self.colour_gaussian) - 0.5) / dc
            self.colour_basis[:, :3] = 0.0
            self.colour_basis[0, :3] = 1.0
            self.colour_channel[:, :3] = torch.eye(3)
        return width

    @torch.no_grad()
    def set_scales(self, rows: torch.Tensor, scales: torch.Tensor) -> None:
        """Give the Gaussians `rows [M]` the standard deviations `scales [M, 3]` (floored at `min_scale`)."""
        floor = self.min_scale**2
        self.log_scales[rows] = 0.5 * torch.log((scales.square() - floor).clamp(min=1e-6 * floor))

    # --- slimming -----------------------------------------------------------------------------
    def _slimmed_config(self, rank: int) -> dict[str, Any]:
        return {"colour_components": active_components(rank, self.colour_gaussian.shape[1], self.ranks)}

    def _slimmed_state(self, rank: int) -> dict[str, torch.Tensor]:
        kept = active_components(rank, self.colour_gaussian.shape[1], self.ranks)
        state = {name: tensor.detach() for name, tensor in self.state_dict().items()}
        for name in ("colour_gaussian", "colour_basis", "colour_channel"):
            state[name] = state[name][:, :kept]
        return state

    # --- 3DGS files -----------------------------------------------------------------------------
    @torch.no_grad()
    def to_splats(self) -> Splats:
        """The Gaussians as 3DGS stores them (at the active rank; float32 on the CPU)."""
        return Splats(
            means=self.means.detach().float().cpu(),
            scales=self.scales().float().cpu(),
            quats=F.normalize(self.quats, dim=-1).float().cpu(),
            opacities=self.opacities().float().cpu(),
            sh=self.sh_coefficients().float().cpu(),
        )

    @classmethod
    @torch.no_grad()
    def from_splats(cls, splats: Splats, aabb: torch.Tensor | None = None, resolution: list[int] | None = None,
                    **kwargs: Any) -> "GaussianField":  # fmt: skip
        """A field holding `splats` exactly (standard deviations below the floor are raised to it).

        The colour factors are the exact rank-3K decomposition: component r = 3k + c has
        b_r = e_k and c_r = e_c, so a_r holds coefficient k of channel c; the rank order is then
        by SH degree, and slimming to rank 3 keeps the DC colours. `aabb` defaults to the box of
        the means and `resolution` to `INDEX_RESOLUTION` cells along its longest axis.
        """
        if aabb is None:
            aabb = torch.stack([splats.means.min(0).values, splats.means.max(0).values]).float()
            aabb = aabb + torch.tensor([[-1e-3], [1e-3]]) * (aabb[1] - aabb[0]).max()
        resolution = resolution or cls.index_resolution(aabb)
        coefficients = splats.sh.shape[1]
        field = cls(aabb, resolution, num_gaussians=len(splats), colour_components=3 * coefficients,
                    sh_degree=splats.sh_degree, **kwargs)  # fmt: skip
        floor = field.min_scale**2
        field.means.copy_(splats.means)
        field.log_scales.copy_(0.5 * torch.log((splats.scales.double().square() - floor).clamp(min=1e-6 * floor)))
        field.quats.copy_(splats.quats)
        field.opacity_logits.copy_(torch.logit(splats.opacities.double().clamp(1e-7, 1 - 1e-7)))
        field.colour_gaussian.copy_(splats.sh.reshape(len(splats), 3 * coefficients))
        field.colour_basis.copy_(torch.eye(coefficients).repeat_interleave(3, dim=1))
        field.colour_channel.copy_(torch.eye(3).repeat(1, coefficients))
        return field


def spacing(points: torch.Tensor, probes: int = 2000) -> float:
    """The median distance from `probes` of `points [P, 3]` to their nearest other point: placed
    Gaussians start that wide, so that each point of a surface is within the cutoff of a few of
    them (3DGS starts at the mean distance to the 3 nearest, and rasterizes; a marched sample
    pays for every Gaussian that reaches it)."""
    chosen = points[torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:probes].to(points.device)]
    distances = torch.cdist(chosen, points)
    distances[distances == 0] = float("inf")
    return float(distances.min(dim=1).values.median())
