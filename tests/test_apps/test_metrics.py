"""PSNR and SSIM against hand values and an independent port of mip-NeRF's SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d

from apps.evaluate.metrics import psnr, ssim


def mipnerf_ssim(img0: np.ndarray, img1: np.ndarray, max_val: float = 1.0) -> float:
    """mip-NeRF's `compute_ssim` (internal/math.py) in numpy, float64: 11x11 Gaussian (sigma 1.5),
    separable 'valid' filtering, C1 = (0.01 L)^2, C2 = (0.03 L)^2, mean over pixels and channels."""
    filter_size, filter_sigma = 11, 1.5
    hw = filter_size // 2
    shift = (2 * hw - filter_size + 1) / 2
    f_i = ((np.arange(filter_size) - hw + shift) / filter_sigma) ** 2
    filt = np.exp(-0.5 * f_i)
    filt /= filt.sum()

    def blur(z: np.ndarray) -> np.ndarray:
        return np.stack(
            [convolve2d(convolve2d(z[..., c], filt[None, :], mode="valid"), filt[:, None], mode="valid") for c in range(z.shape[-1])],
            axis=-1,
        )

    img0, img1 = img0.astype(np.float64), img1.astype(np.float64)
    mu0, mu1 = blur(img0), blur(img1)
    sigma00 = np.maximum(0.0, blur(img0**2) - mu0**2)
    sigma11 = np.maximum(0.0, blur(img1**2) - mu1**2)
    sigma01 = blur(img0 * img1) - mu0 * mu1
    sigma01 = np.sign(sigma01) * np.minimum(np.sqrt(sigma00 * sigma11), np.abs(sigma01))
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    numer = (2 * mu0 * mu1 + c1) * (2 * sigma01 + c2)
    denom = (mu0**2 + mu1**2 + c1) * (sigma00 + sigma11 + c2)
    return float(np.mean(numer / denom))


def structured_image(h: int, w: int, phase: float) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    checker = ((x // 6 + y // 6) % 2) * 0.5
    waves = 0.25 * (1 + np.sin(0.3 * x + phase) * np.cos(0.21 * y - phase))
    ramp = x / w
    return np.clip(np.stack([checker + 0.3 * ramp, waves, 0.5 * checker + 0.5 * waves], axis=-1), 0.0, 1.0)


def test_psnr_known_mse() -> None:
    target = torch.rand(8, 9, 3) * 0.8
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    noise = torch.zeros(8, 9, 3)
    noise[::2] = 0.01
    assert psnr(target + noise, target) == pytest.approx(-10 * math.log10(0.5 * 1e-4), abs=1e-3)
    assert psnr(target, target) == math.inf
    assert psnr(torch.zeros(4, 4, 3, dtype=torch.uint8), torch.ones(4, 4, 3, dtype=torch.uint8)) == pytest.approx(0.0)


def test_ssim_identical_images_is_one() -> None:
    image = torch.rand(32, 40, 3)
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    flat = torch.full((20, 20, 3), 0.4)
    assert ssim(flat, flat) == pytest.approx(1.0, abs=1e-6)


def test_ssim_random_images_match_mipnerf() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((37, 45, 3))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    c = rng.random((37, 45, 3))
    for x, y in [(a, b), (a, c), (b, c)]:
        got = ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float())
        want = mipnerf_ssim(x.astype(np.float32), y.astype(np.float32))
        assert got == pytest.approx(want, abs=1e-4)
    assert mipnerf_ssim(a, c) < 0.1 < mipnerf_ssim(a, b) < 0.9  # the pairs really differ


def test_ssim_structured_images_match_mipnerf() -> None:
    a = structured_image(48, 64, 0.0)
    b = structured_image(48, 64, 0.4)
    rng = np.random.default_rng(1)
    c = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1)
    for x, y in [(a, b), (a, c), (b, c)]:
        got = ssim(torch.from_numpy(x).float(), torch.from_numpy(y).float())
        want = mipnerf_ssim(x.astype(np.float32), y.astype(np.float32))
        assert got == pytest.approx(want, abs=1e-4)
        assert want < 0.99  # the pairs really differ
