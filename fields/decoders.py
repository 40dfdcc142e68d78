"""Appearance decoders: features + view direction -> RGB (TensoRF's MLP and SH renderers)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["positional_encoding", "MLPDecoder", "SHDecoder", "make_decoder", "sh_basis", "SH_C0"]


def positional_encoding(values: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """TensoRF's encoding: sin and cos of `values * 2^k`, k < num_freqs.

    Args:
        values: `[N, C]`.
    Returns:
        `[N, 2 * num_freqs * C]` laid out as [sin(all), cos(all)].
    """
    freqs = 2.0 ** torch.arange(num_freqs, device=values.device, dtype=values.dtype)
    scaled = (values[..., None] * freqs).flatten(-2)
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1)


class MLPDecoder(nn.Module):
    """TensoRF's `MLPRender_Fea`: [f, d, PE(f), PE(d)] -> 128 -> 128 -> RGB (sigmoid), with a
    per-image appearance code of `code_dim` appended to the input when `code_dim > 0`
    (NeRF-W's and nerfacto's appearance embedding)."""

    def __init__(self, in_features: int, feature_pe: int = 2, view_pe: int = 2, hidden: int = 128, code_dim: int = 0) -> None:
        super().__init__()
        self.feature_pe = feature_pe
        self.view_pe = view_pe
        self.code_dim = code_dim
        in_dim = in_features + 3 + 2 * feature_pe * in_features + 2 * view_pe * 3 + code_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 3),
        )
        nn.init.constant_(self.mlp[-1].bias, 0.0)

    def forward(self, features: torch.Tensor, viewdirs: torch.Tensor, codes: torch.Tensor | None = None) -> torch.Tensor:
        """features `[N, F]`, unit viewdirs `[N, 3]` and, with `code_dim`, appearance codes
        `[N, code_dim]` -> RGB `[N, 3]` in [0, 1]."""
        parts = [features, viewdirs]
        if self.feature_pe > 0:
            parts.append(positional_encoding(features, self.feature_pe))
        if self.view_pe > 0:
            parts.append(positional_encoding(viewdirs, self.view_pe))
        if self.code_dim > 0:
            if codes is None:
                raise ValueError(f"this decoder takes appearance codes of width {self.code_dim}")
            parts.append(codes)
        return torch.sigmoid(self.mlp(torch.cat(parts, dim=-1)))


#: real SH constants per degree, as 3DGS's `sh_utils.py` and Plenoxels use them
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)  # fmt: skip


def sh_basis(viewdirs: torch.Tensor, degree: int = 2) -> torch.Tensor:
    """Real spherical harmonics up to `degree` (0 to 3; (degree + 1)^2 bases) in the order and
    signs of Plenoxels, TensoRF and 3DGS (`eval_sh`), so 3DGS `.ply` coefficients apply as they are.

    Args:
        viewdirs: unit directions `[N, 3]`.
    Returns:
        `[N, (degree + 1)^2]`.
    """
    if degree not in (0, 1, 2, 3):
        raise ValueError(f"SH degree must be 0 to 3, got {degree}")
    x, y, z = viewdirs.unbind(-1)
    bases = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        bases += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        c2 = SH_C2
        bases += [c2[0] * x * y, c2[1] * y * z, c2[2] * (2.0 * zz - xx - yy), c2[3] * x * z, c2[4] * (xx - yy)]
    if degree >= 3:
        c3 = SH_C3
        bases += [
            c3[0] * y * (3.0 * xx - yy),
            c3[1] * x * y * z,
            c3[2] * y * (4.0 * zz - xx - yy),
            c3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            c3[4] * x * (4.0 * zz - xx - yy),
            c3[5] * z * (xx - yy),
            c3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(bases, dim=-1)


class SHDecoder(nn.Module):
    """TensoRF's `SHRender`: 27 features are degree-2 SH coefficients per colour channel."""

    in_features = 27

    def forward(self, features: torch.Tensor, viewdirs: torch.Tensor) -> torch.Tensor:
        """features `[N, 27]`, unit viewdirs `[N, 3]` -> RGB `[N, 3]` in [0, 1]."""
        coeffs = features.view(-1, 3, 9)
        return ((coeffs * sh_basis(viewdirs)[:, None, :]).sum(-1) + 0.5).clamp(0.0, 1.0)


def make_decoder(kind: str, in_features: int, pe: int = 2, code_dim: int = 0) -> nn.Module:
    """Build a decoder by name: "mlp" (TensoRF's MLP_Fea with `pe` frequencies for features and
    view directions, and appearance codes of `code_dim` when above 0) or "sh" (needs 27
    features; its colour is the SH coefficients themselves, so it takes no appearance codes)."""
    if kind == "mlp":
        return MLPDecoder(in_features, feature_pe=pe, view_pe=pe, code_dim=code_dim)
    if kind == "sh":
        if code_dim > 0:
            raise ValueError("the SH decoder takes no appearance codes: use --decoder mlp with --appearance on")
        if in_features != SHDecoder.in_features:
            raise ValueError(f"the SH decoder needs {SHDecoder.in_features} appearance features, got {in_features}")
        return SHDecoder()
    raise ValueError(f"unknown decoder '{kind}' (choose 'mlp' or 'sh')")
