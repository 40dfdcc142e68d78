"""Image quality metrics: PSNR and mip-NeRF SSIM (11x11 Gaussian window, sigma 1.5, valid)."""

from __future__ import annotations

import math

import kornia
import torch

__all__ = ["psnr", "ssim"]


def psnr(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1], any matching shapes."""
    mse = torch.mean((prediction.float() - target.float()) ** 2).item()
    return float("inf") if mse == 0 else -10.0 * math.log10(mse)


def ssim(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Structural similarity of two `[H, W, 3]` images in [0, 1], as mip-NeRF/TensoRF report it:
    Gaussian window 11x11 with sigma 1.5 and no padding ('valid'), averaged over pixels."""
    a = prediction.float().permute(2, 0, 1)[None].clamp(0.0, 1.0)
    b = target.float().permute(2, 0, 1)[None]
    return kornia.metrics.ssim(a, b, window_size=11, max_val=1.0, padding="valid").mean().item()
