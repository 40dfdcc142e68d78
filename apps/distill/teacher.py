"""The teacher of a distillation: a trained run folder, the views it renders for the student, and
the scene those views make (no training image is read).

The student trains on `teacher_scene`: its "train" split is the teacher's renders at cameras
sampled around the teacher's training cameras (`cameras.sample_cameras`), its "test" split the
teacher scene's real held-out images when they can still be loaded (same size), else more
teacher renders at other sampled cameras. The renders (colour, opacity, depth) are saved in the
student's run folder (`TEACHER_VIEWS`), so a resumed distillation trains on the same views
without rendering them again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from data import Cameras, Scene, SceneError, load_scene
from render import Model

from ..runs import atomic_output, load_checkpoint, load_run_config, train_cameras
from .cameras import sample_cameras

__all__ = ["Teacher", "TeacherViews", "load_teacher", "render_views", "load_views", "teacher_scene", "TEACHER_VIEWS", "HELD_OUT_VIEWS"]

#: the file in the student's run folder that keeps the teacher's renders
TEACHER_VIEWS = "teacher_views.safetensors"
#: teacher renders that stand in for held-out images when the teacher's images are gone
HELD_OUT_VIEWS = 10


@dataclass
class Teacher:
    """A trained run: its model and what its config.json says (`train`: its TrainConfig as a
    dict, `scene`: `runs.scene_info` of its scene)."""

    run: Path
    model: Model
    train: dict[str, Any]
    scene: dict[str, Any]

    @property
    def cameras(self) -> Cameras:
        """The teacher's training cameras (after pose refinement, if it refined them)."""
        return train_cameras(self.scene)

    @property
    def forward_facing(self) -> bool:
        return bool(self.scene["forward_facing"])


@dataclass
class TeacherViews:
    """What the teacher renders at `cameras [V]`: `rgb [V, H, W, 3]` uint8 on the teacher's
    background, `opacity`, `depth` `[V, H, W]` float32 (depth: the weights' sum of distances,
    world units), rendered in `seconds`."""

    cameras: Cameras
    rgb: torch.Tensor
    opacity: torch.Tensor
    depth: torch.Tensor
    seconds: float


def load_teacher(run: str | Path, device: torch.device | str = "cpu") -> Teacher:
    """The run folder `run` as a teacher. A folder without a run, without a checkpoint, or with a
    checkpoint newer than this tensorfields raises one line (`CheckpointError`, `ValueError`)."""
    run = Path(run)
    if not run.is_dir():
        raise ValueError(f"{run}: no such run folder (give the folder a `tensorfields train --out` wrote)")
    checkpoint = load_checkpoint(run, device)
    config = load_run_config(run)
    model = checkpoint.model
    model.field.eval().requires_grad_(False)
    return Teacher(run, model, config["train"], config["scene"])


@torch.no_grad()
def render_views(teacher: Teacher, cameras: Cameras) -> TeacherViews:
    """The teacher's renders at `cameras` (on the teacher's device), timed."""
    start = time.perf_counter()
    device = teacher.model.grid.occupied.device
    on_device = cameras.to(device)
    images = [teacher.model.render_image(on_device, i) for i in range(len(cameras))]
    rgb = torch.stack([(image["rgb"] * 255).round().to(torch.uint8).cpu() for image in images])
    opacity = torch.stack([image["opacity"].float().cpu() for image in images])
    depth = torch.stack([image["depth"].float().cpu() for image in images])
    return TeacherViews(cameras, rgb, opacity, depth, time.perf_counter() - start)


def sampled_views(teacher: Teacher, count: int, seed: int) -> TeacherViews:
    """The teacher's renders at `count` cameras sampled around its training cameras."""
    generator = torch.Generator().manual_seed(seed)
    return render_views(teacher, sample_cameras(teacher.cameras, count, teacher.forward_facing, generator))


def save_views(views: TeacherViews, path: Path) -> None:
    """Write `views` atomically (a kill leaves no half-written file)."""
    c = views.cameras
    tensors = {
        "rgb": views.rgb, "opacity": views.opacity, "depth": views.depth, "c2w": c.c2w.cpu(),
        "intrinsics": torch.stack([c.fx, c.fy, c.cx, c.cy], dim=1).cpu(),
    }  # fmt: skip
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"seconds": f"{views.seconds:.3f}"})


def load_views(path: Path) -> TeacherViews:
    """Views written by `save_views`; a `ValueError` naming the file when it is not one."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            seconds = float((handle.metadata() or {}).get("seconds", 0.0))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a file of teacher views ({error}); start over with --overwrite") from None
    missing = {"rgb", "opacity", "depth", "c2w", "intrinsics"} - set(tensors)
    if missing:
        raise ValueError(f"{path}: teacher views without {', '.join(sorted(missing))}; start over with --overwrite")
    height, width = tensors["rgb"].shape[1:3]
    fx, fy, cx, cy = tensors["intrinsics"].unbind(1)
    cameras = Cameras(tensors["c2w"], fx, fy, cx, cy, int(width), int(height))
    return TeacherViews(cameras, tensors["rgb"], tensors["opacity"], tensors["depth"], seconds)


def real_held_out(teacher: Teacher, log: Callable[[str], None]) -> tuple[torch.Tensor, Cameras, list[str]] | None:
    """The teacher scene's held-out images `[T, H, W, 3]`, cameras and names, when its data still
    loads at the teacher's size; None (saying why) otherwise."""
    data, downsample = teacher.train["data"], teacher.train["downsample"]
    try:
        scene = load_scene(data, downsample)
    except (SceneError, OSError, ValueError) as error:
        log(f"held-out views: the teacher's images cannot be read ({str(error).splitlines()[0]}); scoring against teacher renders")
        return None
    if (scene.width, scene.height) != (teacher.scene["width"], teacher.scene["height"]):
        log(f"held-out views: {data} is {scene.width}x{scene.height}, not the teacher's size; scoring against teacher renders")
        return None
    test = scene.split("test")
    names = [scene.names[i] for i in test.tolist()] if scene.names else [f"test_{i:03d}" for i in range(len(test))]
    return scene.images[test], scene.cameras[test], names


def teacher_scene(teacher: Teacher, views: TeacherViews, held_out: TeacherViews | tuple[torch.Tensor, Cameras, list[str]]) -> Scene:
    """The scene a student trains on: `views` as "train", `held_out` (teacher renders, or real
    images with their cameras and names) as "test", in the teacher's frame and scene box (the
    box its run recorded, so that grid schedules give the student the teacher's voxel size;
    the teacher field's box for runs that did not record one)."""
    if isinstance(held_out, TeacherViews):
        test_images, test_cameras = held_out.rgb, held_out.cameras
        test_names = [f"teacher_held_out_{i:03d}" for i in range(len(test_images))]
    else:
        test_images, test_cameras, test_names = held_out
    train_count, test_count = len(views.rgb), len(test_images)
    cameras = _concatenated(views.cameras, test_cameras)
    settings, field = teacher.model.settings, teacher.model.field
    return Scene(
        images=torch.cat([views.rgb, test_images]),
        cameras=cameras,
        aabb=_scene_box(teacher),
        near=settings.near,
        far=settings.far,
        background=torch.tensor(settings.background, dtype=torch.float32),
        splits={"train": torch.arange(train_count), "test": train_count + torch.arange(test_count)},
        source=Path(teacher.train["data"]),
        kind=teacher.scene["kind"],
        downsample=float(teacher.train["downsample"]),
        ndc=settings.ndc is not None,
        ndc_focal=0.0 if settings.ndc is None else settings.ndc.focal,
        ndc_near=1.0 if settings.ndc is None else settings.ndc.near,
        names=[f"teacher_{i:04d}" for i in range(train_count)] + test_names,
    )


def _scene_box(teacher: Teacher) -> torch.Tensor:
    """The teacher's scene box `[2, 3]`: recorded by its run, else its field's box."""
    recorded = teacher.scene.get("aabb")
    if recorded is None:
        return teacher.model.field.aabb.detach().float().cpu().clone()
    return torch.tensor(recorded, dtype=torch.float32).view(2, 3)


def _concatenated(first: Cameras, second: Cameras) -> Cameras:
    """Cameras of one image size, `first` then `second` (lens distortion kept, none for cameras without)."""
    distortion = None
    if first.distortion is not None or second.distortion is not None:
        distortion = torch.cat([torch.zeros(len(c), 4) if c.distortion is None else c.distortion.cpu() for c in (first, second)])
    return Cameras(
        torch.cat([first.c2w.cpu(), second.c2w.cpu()]),
        torch.cat([first.fx.cpu(), second.fx.cpu()]),
        torch.cat([first.fy.cpu(), second.fy.cpu()]),
        torch.cat([first.cx.cpu(), second.cx.cpu()]),
        torch.cat([first.cy.cpu(), second.cy.cpu()]),
        first.width,
        first.height,
        distortion,
    )
