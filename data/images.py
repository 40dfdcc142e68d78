"""Image files: reading, antialiased resizing, alpha compositing and parallel loading."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
from PIL import Image

from .scene import SceneError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageStack",
    "composite",
    "list_images",
    "load_images",
    "read_image",
    "resize_image",
    "scaled_size",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the first bytes of the formats of IMAGE_SUFFIXES
_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}

# Decoding (zlib, libjpeg) and PIL resizing release the GIL, so threads overlap well.
_WORKERS = min(16, 2 * (os.cpu_count() or 1))


@dataclass
class ImageStack:
    """Images loaded by `load_images`.

    Attributes:
        rgb: `[N, H, W, 3]` uint8, composited on `background` where the files had alpha.
        alpha: `[N, H, W]` uint8 when the first image had an alpha channel, else None.
        source_size: (width, height) of the files on disk, before resizing.
        background: the RGB colour in [0, 1] that alpha was composited on.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    source_size: tuple[int, int]
    background: tuple[float, float, float]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """Image size after scaling by `factor`, rounded exactly as `Cameras.scaled` rounds it."""
    return round(width * factor), round(height * factor)


def read_image(path: Path) -> np.ndarray:
    """Read one image file.

    Returns:
        `[H, W, 3]` or `[H, W, 4]` uint8 (grayscale becomes RGB, 16-bit becomes 8-bit).
    Raises:
        SceneError: the file is missing, empty, not an image, corrupt or not an 8/16-bit image.
    """
    if not path.is_file():
        raise SceneError(path, "image file not found")
    if path.stat().st_size == 0:
        raise SceneError(path, "empty file (0 bytes), not an image")
    try:
        image = iio.imread(path)
    except Exception as error:  # decoders raise many types; all mean "unreadable"
        raise SceneError(path, _unreadable(path, error)) from None
    return _to_rgb_uint8(path, image)


def _unreadable(path: Path, error: Exception) -> str:
    """Why `path` could not be decoded, judged from its first bytes: a PNG or JPEG that is
    corrupt or truncated, or something else (imageio's own message then suggests plugins for
    other formats, which would mislead)."""
    reason = " ".join(str(error).split()) or type(error).__name__
    try:
        with path.open("rb") as file:
            head = file.read(8)
    except OSError as read_error:
        return f"cannot read image: {read_error.strerror or read_error}"
    kind = next((name for signature, name in _SIGNATURES.items() if head.startswith(signature)), None)
    if kind is not None:
        return f"cannot read image: corrupt or truncated {kind} file ({reason})"
    if path.suffix.lower() in IMAGE_SUFFIXES or "could not find a backend" in reason.lower():
        return f"cannot read image: not a PNG or JPEG image (its first bytes are {head[:4]!r})"
    return f"cannot read image: {reason}"


def _to_rgb_uint8(path: Path, image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if image.dtype != np.uint8:
        raise SceneError(path, f"unsupported pixel type {image.dtype} (expected 8 or 16 bit)")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise SceneError(path, f"unsupported image shape {image.shape}")
    if image.shape[2] <= 2:  # gray or gray + alpha
        image = np.concatenate([image[..., :1].repeat(3, axis=2), image[..., 1:]], axis=2)
    return image


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize with PIL's Lanczos filter (antialiased, as TensoRF downsamples).

    Args:
        image: `[H, W, C]` uint8, C in (3, 4); RGBA is filtered with premultiplied alpha.
        size: target (width, height).
    Returns:
        `[height, width, C]` uint8.
    """
    if (image.shape[1], image.shape[0]) == size:
        return image
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def composite(image: np.ndarray, background: Sequence[float]) -> np.ndarray:
    """Composite RGBA over a background colour.

    Args:
        image: `[H, W, 4]` uint8.
        background: RGB in [0, 1].
    Returns:
        `[H, W, 3]` uint8, `rgb * a + background * (1 - a)` rounded.
    """
    rgba = image.astype(np.float32) / 255.0
    alpha = rgba[..., 3:]
    rgb = rgba[..., :3] * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def load_images(
    paths: Sequence[Path],
    downsample: float = 1.0,
    background: Sequence[float] | None = None,
    size: tuple[int, int] | None = None,
) -> ImageStack:
    """Load images in parallel, resize them by 1 / `downsample` and composite alpha.

    Args:
        paths: image files; all must have the same size.
        downsample: divide width and height by this (Lanczos resize when != 1).
        background: RGB in [0, 1] to composite alpha on; None means white when the images have
            alpha and black otherwise.
        size: the (width, height) the files must have (e.g. from the intrinsics); None means the
            size of the first file.
    Raises:
        SceneError: naming the first file that is missing, unreadable or of the wrong size.
    """
    if not paths:
        raise ValueError("load_images needs at least one path")
    first = read_image(paths[0])
    source_size = size or (first.shape[1], first.shape[0])
    expected = "from the camera intrinsics" if size else f"like {paths[0].name}"
    has_alpha = first.shape[2] == 4
    if background is None:
        background = (1.0, 1.0, 1.0) if has_alpha else (0.0, 0.0, 0.0)
    width, height = scaled_size(*source_size, 1.0 / downsample)
    if width < 1 or height < 1:
        raise SceneError(paths[0], f"downsample {downsample} leaves no pixels of {source_size}")
    rgb = np.empty((len(paths), height, width, 3), np.uint8)
    alpha = np.empty((len(paths), height, width), np.uint8) if has_alpha else None

    def load(index: int) -> None:
        image = first if index == 0 else read_image(paths[index])
        _check_size(paths[index], image, source_size, expected)
        image = resize_image(image, (width, height))
        if image.shape[2] == 4:
            rgb[index] = composite(image, background)
        else:
            rgb[index] = image
        if alpha is not None:
            alpha[index] = image[..., 3] if image.shape[2] == 4 else 255

    with ThreadPoolExecutor(_WORKERS) as pool:
        list(pool.map(load, range(len(paths))))
    return ImageStack(rgb, alpha, source_size, tuple(float(c) for c in background))


def _check_size(path: Path, image: np.ndarray, size: tuple[int, int], expected: str) -> None:
    actual = (image.shape[1], image.shape[0])
    if actual != size:
        raise SceneError(
            path, f"image is {actual[0]}x{actual[1]}, expected {size[0]}x{size[1]} {expected}"
        )
