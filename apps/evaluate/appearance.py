"""How held-out views are coloured by a field with per-image appearance codes (`fields.appearance`).

A held-out image has no code of its own. It is rendered with the mean of the training images'
codes ("mean"), or, as NeRF-W does, with a code fitted to the left half of the image while the
field stays frozen, and then scored on the right half only ("fit-left-half"), so that the code
cannot learn the pixels it is scored on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from data.cameras import Cameras
from fields.appearance import codes_of
from render import NDC, Model, Rays, camera_rays

__all__ = ["APPEARANCE_MODES", "appearance_protocol", "check_appearance_mode", "fit_code", "frozen", "left_half_rays", "FIT_STEPS"]

#: the `eval --appearance` choices and how metrics files describe them
APPEARANCE_MODES = {"mean": "mean code", "fit-left-half": "fitted on the left half, scored on the right half"}
#: Adam steps, learning rate and rays per step of the left-half fit (NeRF-W fits its test codes
#: the same way; a few dozen steps settle a code on a 100x100 view)
FIT_STEPS, FIT_LR, FIT_BATCH = 40, 0.05, 2048


def appearance_protocol(model: Model, mode: str) -> str:
    """What a metrics file says about the colouring of held-out views: `APPEARANCE_MODES[mode]`,
    or "none" for a field without appearance codes."""
    return "none" if codes_of(model.field) is None else APPEARANCE_MODES[mode]


def check_appearance_mode(model: Model, mode: str) -> None:
    """ValueError (one line naming the flag) unless `mode` is known and applies to `model`."""
    if mode not in APPEARANCE_MODES:
        raise ValueError(f"--appearance {mode}: unknown (choose {' or '.join(APPEARANCE_MODES)})")
    if mode == "fit-left-half" and codes_of(model.field) is None:
        raise ValueError("--appearance fit-left-half: this run has no appearance codes (it was trained with --appearance off)")


def left_half_rays(cameras: Cameras, index: int, ndc: NDC | None = None) -> tuple[torch.Tensor, Rays]:
    """Pixel indices `[P]` (row-major, of the full image) of the left half of camera `index`'s
    image (columns below width // 2), and their rays (warped to `ndc` when given)."""
    width, height = cameras.width, cameras.height
    device = cameras.c2w.device
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width // 2, device=device), indexing="ij")
    pixels = (ys * width + xs).reshape(-1)
    x, y = (xs.reshape(-1) + 0.5).float(), (ys.reshape(-1) + 0.5).float()
    indices = torch.full_like(pixels, index)
    return pixels, camera_rays(cameras, indices, x, y, ndc)


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """`module`'s parameters without gradients for the block (then as they were)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def fit_code(model: Model, cameras: Cameras, index: int, image: torch.Tensor, steps: int = FIT_STEPS, seed: int = 0) -> torch.Tensor:
    """The appearance code `[E]` that best renders the left half of camera `index`'s view,
    `image [H, W, 3]` float in [0, 1], with the field frozen: `steps` Adam steps from the mean
    code on `FIT_BATCH` random left-half rays each (fixed `seed`)."""
    codes = codes_of(model.field)
    if codes is None:
        raise ValueError("this field has no appearance codes to fit")
    pixels, rays = left_half_rays(cameras, index, model.settings.ndc)
    target = image.reshape(-1, 3)[pixels]
    code = codes.mean().detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([code], lr=FIT_LR)
    generator = torch.Generator(device=pixels.device).manual_seed(seed)
    with torch.enable_grad(), frozen(model.field):
        for _ in range(steps):
            pick = torch.randint(len(rays), (min(FIT_BATCH, len(rays)),), generator=generator, device=pixels.device)
            batch = rays[pick]
            batch.code = code.expand(len(batch), -1)
            loss = torch.mean((model(batch).rgb - target[pick]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return code.detach()
