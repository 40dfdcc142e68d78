"""Joint camera-pose refinement (`--refine-poses`), after Cheng, Chiu and Liu, "Improving
Robustness for Joint Optimization of Camera Poses and Decomposed Low-Rank Tensorial Radiance
Fields" (AAAI 2024).

Every training camera gets an se(3) correction xi = (omega, rho) `[6]`, zero at the start, and
training rays are cast from c2w' = c2w @ exp(xi): the correction acts in the camera's own
frame (omega rotates about the camera centre, rho moves it along its own axes), so rotation
and translation stay decoupled. rho is optimized in units of the cameras' distance from the
scene's centre (`camera_radius`), so that one Adam step moves a camera about as far by
translation as by rotation, whatever the scene's scale. The corrections have their own Adam,
whose learning rate decays exponentially from `LR_START` to `LR_END` over the run.

A radiance field of fine detail gives pose gradients that point every which way; the paper's
coarse-to-fine schedule smooths the problem during the first third of the run:
- the field's factors are blurred by a Gaussian (`fields.base.Blurrable`, separable, so it is
  the 3D blur of the field at the cost of a few small matrix products), whose width follows
  `FIELD_BLUR`; each step the density's kernel is scaled by a random factor of
  `DENSITY_SCALES` (the paper's randomly scaled kernels);
- the targets are the training images blurred to match (`IMAGE_BLUR`, kornia's
  `gaussian_blur2d`), at a random scale of `IMAGE_SCALES` per step;
- on every other step of the first `EDGE_UNTIL` of the run the loss weighs pixels on image
  edges (Sobel magnitude above `EDGE_THRESHOLD` times the image's mean, kornia's `sobel`) by
  `EDGE_WEIGHT` and the others by `FLAT_WEIGHT` (the edge-guided loss mask).
`--pose-blur off` refines without the blurs (the edge mask stays), for comparison.

The corrections and their Adam moments are saved in the checkpoint (tensors
`state.poses.*`); the refined cameras are what the run records (config.json's training
cameras, which the viewer, `render` and `export-mesh` use) and `transforms.json` in the run
folder (nerfstudio layout, OpenGL poses, full-size intrinsics; it loads as a scene).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from data import Cameras, PixelBatch, Scene
from data.cameras import OPENGL_TO_OPENCV, se3_exp
from fields import Blurrable

from ..config import TrainConfig
from .base import Strategy

if TYPE_CHECKING:
    from ..trainer import Trainer

__all__ = [
    "PoseRefinement",
    "schedule_value",
    "FIELD_BLUR",
    "IMAGE_BLUR",
    "DENSITY_SCALES",
    "IMAGE_SCALES",
    "LR_START",
    "LR_END",
]

#: 3D blur width as a fraction of the scene box's longest side, (progress, value) knots joined
#: linearly: the paper's 0.3, 0.15, 0.07 world units in a box 3 wide at 0, 10 and 20% of the run
FIELD_BLUR = ((0.0, 0.1), (0.1, 0.05), (0.2, 0.0233), (0.3, 0.0))
#: 2D blur width as a fraction of the mean image side: the paper's 0.025, 0.0125, 0.00625 at
#: 0, 1/9 and 2/9 of the run, none from 1/3 on
IMAGE_BLUR = ((0.0, 0.025), (1 / 9, 0.0125), (2 / 9, 0.00625), (1 / 3, 0.0))
#: the random factors of the density kernel and of the target blur, one drawn per step
DENSITY_SCALES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
IMAGE_SCALES = (0.0, 0.25, 0.5, 0.75, 1.0)
#: edge-guided loss mask: edge pixels' weight, the others', the threshold on the Sobel magnitude
#: (times the image's mean), and the part of the run it is used in (every other step)
EDGE_WEIGHT, FLAT_WEIGHT, EDGE_THRESHOLD, EDGE_UNTIL = 1.5, 0.5, 1.25, 0.2
#: the corrections' Adam learning rate, decaying exponentially over the run
LR_START, LR_END = 5e-3, 1e-3
#: blurs narrower than these (voxels, pixels) are left out
MIN_FIELD_SIGMA, MIN_IMAGE_SIGMA = 0.25, 0.3
#: blurred targets are rebuilt when the schedule's width has moved this far (relative) from theirs
IMAGE_BLUR_TOLERANCE = 0.25


def schedule_value(knots: tuple[tuple[float, float], ...], progress: float) -> float:
    """The piecewise-linear schedule `knots` ((progress, value), increasing progress) at
    `progress`; the last value beyond the last knot."""
    for (p0, v0), (p1, v1) in zip(knots, knots[1:]):
        if progress <= p1:
            return v0 + (v1 - v0) * max(0.0, progress - p0) / (p1 - p0)
    return knots[-1][1]


def refined_transforms(scene: Scene, cameras: Cameras, iteration: int) -> dict[str, Any]:
    """A nerfstudio `transforms.json` of the training cameras `cameras` (OpenCV, at the run's
    resolution, `len(scene.split("train"))` of them): OpenGL `transform_matrix`es and per-frame
    intrinsics at the size of the image files (the run's scaled by `scene.downsample`), each
    frame naming its image by absolute path when the scene names its images."""
    train = scene.split("train").tolist()
    c2w_gl = cameras.c2w.detach().cpu() @ OPENGL_TO_OPENCV  # the flip is its own inverse
    scale = scene.downsample
    frames = []
    for i, index in enumerate(train):
        name = str((scene.source / scene.names[index]).resolve()) if scene.names else f"frame_{index:04d}"
        frame = {
            "file_path": name,
            "transform_matrix": [[round(v, 8) for v in row] for row in c2w_gl[i].tolist()],
            "fl_x": float(cameras.fx[i]) * scale,
            "fl_y": float(cameras.fy[i]) * scale,
            "cx": float(cameras.cx[i]) * scale,
            "cy": float(cameras.cy[i]) * scale,
        }
        if cameras.distortion is not None:
            frame.update(zip(("k1", "k2", "p1", "p2"), cameras.distortion[i].tolist()))
        frames.append(frame)
    return {"refined_poses": {"source": str(scene.source), "iteration": iteration}, "frames": frames}


class PoseRefinement(Strategy):
    """Per-training-camera se(3) corrections optimized with the field, with the paper's
    coarse-to-fine schedule (see the module docstring). Runs first among the strategies: the
    field's blur is set before each batch is rendered (`before_step`) and cleared in
    `after_step`, before the other strategies' hooks, so the occupancy grid follows the sharp
    field (the blurred one would fill the box: every sample then takes the pure-torch lookup
    that pose gradients need, many times slower) and evaluation sees the sharp field."""

    name = "poses"

    def __init__(self, config: TrainConfig, scene: Scene) -> None:
        self.config = config
        self.blur = config.pose_blur == "on"
        self.train = scene.split("train").long()
        self.position = torch.full((len(scene.images),), -1, dtype=torch.long)  # scene image -> row of `delta`
        self.position[self.train] = torch.arange(len(self.train))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.delta: torch.nn.Parameter | None = None
        self.unit = torch.ones(6)  # delta's units: radians for omega, `camera_radius` for rho
        self.optimizer: torch.optim.Adam | None = None
        self._saved: dict[str, Any] = {}
        self._density_scale = 1.0
        self._image_scale = 1.0
        self._targets: dict[float, torch.Tensor] = {}  # image scale -> blurred training images [T, H, W, 3] uint8
        self._targets_sigma = 0.0
        self._edges: torch.Tensor | None = None  # [T, H * W] float weights
        self._blur_done = False

    # --- the loop -------------------------------------------------------------------------
    def on_start(self, trainer: Trainer, resumed: bool) -> list[str]:
        count, device = len(self.train), trainer.device
        self.train, self.position = self.train.to(device), self.position.to(device)
        self.delta = torch.nn.Parameter(torch.zeros(count, 6, device=device))
        self.unit = torch.tensor([1.0] * 3 + [camera_radius(trainer.scene)] * 3, device=device)
        self.optimizer = torch.optim.Adam([self.delta], lr=LR_START, betas=(0.9, 0.99))
        if self._saved:
            self._restore(trainer)
        how = "with coarse-to-fine filtering for the first third of the run" if self.blur else "without coarse-to-fine filtering (--pose-blur off)"
        events = [f"pose refinement: an se(3) correction for each of the {count} training cameras, {how}"]
        if self.blur and not isinstance(trainer.field, Blurrable):
            events.append(f"pose refinement: a {trainer.field.name} field cannot blur its factors; only the targets are blurred")
        return events

    def _restore(self, trainer: Trainer) -> None:
        """Put the checkpoint's corrections and Adam moments (`load_state_dict`) in place."""
        state, expected = self._saved, tuple(self.delta.shape)
        for key in ("delta", "exp_avg", "exp_avg_sq"):
            if not isinstance(state.get(key), torch.Tensor) or tuple(state[key].shape) != expected:
                raise ValueError(f"checkpoint: train_state.strategies.poses.{key} is not a {list(expected)} tensor (one row per training camera)")
        with torch.no_grad():
            self.delta.copy_(state["delta"])
        step = torch.tensor(float(state.get("adam_step", 0)))
        self.optimizer.state[self.delta] = {
            "step": step,
            "exp_avg": state["exp_avg"].to(self.delta),
            "exp_avg_sq": state["exp_avg_sq"].to(self.delta),
        }
        self._blur_done = bool(state.get("blur_done", False))
        self._saved = {}

    def before_step(self, trainer: Trainer) -> None:
        """Draw this step's kernel scales and blur the field's factors to the schedule's width."""
        progress = trainer.progress
        self._density_scale = DENSITY_SCALES[self._draw(len(DENSITY_SCALES))]
        self._image_scale = IMAGE_SCALES[self._draw(len(IMAGE_SCALES))]
        sigma = self._field_sigma(trainer, progress)
        if sigma is not None:
            trainer.field.set_blur(sigma, density_scale=self._density_scale)

    def cameras(self, trainer: Trainer, cameras: Cameras) -> Cameras:
        """`cameras` with the training cameras' corrections applied, c2w @ exp(xi) (differentiable)."""
        corrected = cameras.c2w[self.train] @ se3_exp(self.delta * self.unit)
        return replace(cameras, c2w=cameras.c2w.index_put((self.train,), corrected))

    def targets(
        self, trainer: Trainer, batch: PixelBatch, rgb: torch.Tensor, weights: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch's targets blurred as the schedule says, and the edge mask's weights on
        every other step of the first `EDGE_UNTIL` of the run."""
        progress = trainer.progress
        positions = self.position[batch.camera_indices]
        pixels = (batch.y.long() * trainer.scene.width + batch.x.long()).to(positions.device)
        blurred = self._blurred_targets(trainer, progress)
        if blurred is not None:
            rgb = blurred.view(len(self.train), -1, 3)[positions.cpu(), pixels.cpu()].to(rgb.device).float() / 255.0
        if progress < EDGE_UNTIL and trainer.state.iteration % 2 == 0:
            edges = self._edge_weights(trainer)[positions, pixels]
            weights = edges if weights is None else weights * edges
        return rgb, weights

    def after_step(self, trainer: Trainer, loss: float) -> list[str]:
        """Step the corrections' Adam at the scheduled rate and turn the field's blur off."""
        for group in self.optimizer.param_groups:
            group["lr"] = LR_START * (LR_END / LR_START) ** trainer.progress
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if isinstance(trainer.field, Blurrable):
            trainer.field.set_blur(None)
        if self._blur_done or not self.blur or schedule_value(FIELD_BLUR, trainer.progress) > 0 or schedule_value(IMAGE_BLUR, trainer.progress) > 0:
            return []
        self._blur_done, self._targets, self._edges = True, {}, None
        return [f"coarse-to-fine filtering over; poses moved {self._movement()}"]

    def finish(self, trainer: Trainer) -> list[str]:
        return [f"pose refinement: training cameras moved {self._movement()} from their given poses"]

    # --- what the run records -------------------------------------------------------------
    def records(self, trainer: Trainer) -> dict[str, dict[str, Any]]:
        """`transforms.json`: the refined training cameras (see `refined_transforms`)."""
        cameras = trainer.training_cameras()[self.train]
        return {"transforms.json": refined_transforms(trainer.scene, cameras, trainer.state.iteration)}

    # --- the schedule ---------------------------------------------------------------------
    def _draw(self, count: int) -> int:
        return int(torch.randint(count, (), generator=self.generator))

    def _field_sigma(self, trainer: Trainer, progress: float) -> float | None:
        """This step's factor blur in voxels of the field, None when there is none."""
        if not self.blur or not isinstance(trainer.field, Blurrable):
            return None
        side = float((trainer.scene.aabb[1] - trainer.scene.aabb[0]).max())
        sigma = schedule_value(FIELD_BLUR, progress) * side / float(trainer.field.voxel_size.mean())
        return sigma if sigma >= MIN_FIELD_SIGMA else None

    def _blurred_targets(self, trainer: Trainer, progress: float) -> torch.Tensor | None:
        """The training images `[T, H, W, 3]` uint8 blurred at this step's scale, or None when
        the targets are the images themselves. The stacks of every scale are rebuilt when the
        schedule's width has moved by `IMAGE_BLUR_TOLERANCE` from theirs."""
        scene = trainer.scene
        sigma = schedule_value(IMAGE_BLUR, progress) * 0.5 * (scene.width + scene.height) if self.blur else 0.0
        if sigma * self._image_scale < MIN_IMAGE_SIGMA:
            return None
        if abs(sigma - self._targets_sigma) > IMAGE_BLUR_TOLERANCE * self._targets_sigma:
            self._targets = {s: _blurred_images(scene.images[self.train.cpu()], s * sigma) for s in IMAGE_SCALES if s * sigma >= MIN_IMAGE_SIGMA}
            self._targets_sigma = sigma
        return self._targets.get(self._image_scale)

    def _edge_weights(self, trainer: Trainer) -> torch.Tensor:
        """`[T, H * W]` loss weights of the edge-guided mask (computed once)."""
        if self._edges is None:
            edges = _edge_mask(trainer.scene.images[self.train.cpu()])
            self._edges = torch.where(edges, EDGE_WEIGHT, FLAT_WEIGHT).flatten(1).to(trainer.device)
        return self._edges

    def _movement(self) -> str:
        """The mean rotation and translation of the corrections so far, in words."""
        with torch.no_grad():
            moved = se3_exp(self.delta * self.unit)
            cosine = ((moved[:, 0, 0] + moved[:, 1, 1] + moved[:, 2, 2] - 1.0) / 2.0).clamp(-1.0, 1.0)
            degrees = float(torch.rad2deg(torch.acos(cosine)).mean())
            distance = float(moved[:, :3, 3].norm(dim=1).mean())
        return f"{degrees:.2f} degrees and {distance:.4f} units on average"

    # --- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The corrections `delta [T, 6]` and their Adam moments (tensors, saved as checkpoint
        tensors), Adam's step count and whether the filtering is over."""
        state = self.optimizer.state.get(self.delta, {})
        zeros = torch.zeros_like(self.delta)
        return {
            "delta": self.delta.detach(),
            "exp_avg": state.get("exp_avg", zeros),
            "exp_avg_sq": state.get("exp_avg_sq", zeros),
            "adam_step": int(state["step"]) if "step" in state else 0,
            "blur_done": self._blur_done,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Keep a checkpoint's state until `on_start` has made the corrections to load it into."""
        self._saved = dict(state) if "delta" in state else {}


def camera_radius(scene: Scene) -> float:
    """The median distance of the training cameras from the centre of the scene box: the scale
    of the corrections' translations."""
    centres = scene.cameras.c2w[scene.split("train"), :3, 3]
    return float((centres - scene.aabb.float().mean(0)).norm(dim=1).median())


def _blurred_images(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """`images [T, H, W, 3]` uint8 blurred by a Gaussian of `sigma` pixels (kornia's
    `gaussian_blur2d`, reflected borders, kernel cut off at 3 sigma), uint8."""
    import kornia

    size = 2 * math.ceil(3.0 * sigma) + 1
    blurred = []
    for chunk in images.split(16):
        x = chunk.permute(0, 3, 1, 2).float() / 255.0
        y = kornia.filters.gaussian_blur2d(x, (size, size), (sigma, sigma))
        blurred.append((y.permute(0, 2, 3, 1).clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8))
    return torch.cat(blurred)


def _edge_mask(images: torch.Tensor) -> torch.Tensor:
    """Edge pixels `[T, H, W]` bool of `images [T, H, W, 3]` uint8: Sobel gradient magnitude of
    the grey image (kornia's `sobel`) above `EDGE_THRESHOLD` times its mean over the image."""
    import kornia

    masks = []
    for chunk in images.split(16):
        grey = chunk.float().mean(-1, keepdim=True).permute(0, 3, 1, 2) / 255.0
        magnitude = kornia.filters.sobel(grey)[:, 0]
        masks.append(magnitude > EDGE_THRESHOLD * magnitude.mean(dim=(1, 2), keepdim=True))
    return torch.cat(masks)
