"""Scoring estimated camera poses against true ones, as BARF does: the similarity that best maps
the estimated camera centres onto the true ones (Umeyama), the rotation and translation errors
left after it, held-out cameras mapped into the estimate's frame to render them, and those
cameras' poses fine-tuned on their own images with the field frozen (BARF's test-time
photometric pose optimization: what is left after the mapping is the residual error of the
similarity fit, not a property of the field)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from data import Cameras, Scene
from data.cameras import se3_exp
from render import Model, camera_rays

from .appearance import frozen

__all__ = ["umeyama", "Similarity", "align_poses", "pose_errors", "into_estimate", "fit_pose", "fit_poses", "into_refined_frame", "REFINED_FRAME", "POSE_FIT_STEPS"]

#: Adam steps, starting learning rate (decaying tenfold over the steps) and rays per step of the
#: test-time pose fit: an se(3) correction of one camera, from zero
POSE_FIT_STEPS, POSE_FIT_LR, POSE_FIT_BATCH = 100, 2e-3, 2048
#: training cameras whose matrices differ from the scene's by more than this have been refined
#: (config.json keeps six decimals)
MOVED_TOLERANCE = 1e-4
#: what logs and metrics files say when `into_refined_frame` has moved the held-out cameras
REFINED_FRAME = "mapped into the refined training cameras' frame (similarity of the given training poses onto the refined ones)"


def umeyama(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The similarity (s, R, t) minimizing |s R source + t - target|^2 (Umeyama 1991), `[N, 3]` each."""
    mean_s, mean_t = source.mean(0), target.mean(0)
    cov = (target - mean_t).T @ (source - mean_s) / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / ((source - mean_s) ** 2).sum(1).mean()
    return scale, rotation, mean_t - scale * rotation @ mean_s


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + shift, from an estimate's frame to the true one."""

    scale: float
    rotation: np.ndarray  # [3, 3]
    shift: np.ndarray  # [3]

    def apply(self, c2w: np.ndarray) -> np.ndarray:
        """Camera-to-world matrices `[N, 4, 4]` of the estimate's frame in the true one."""
        out = c2w.copy()
        out[:, :3, :3] = self.rotation @ c2w[:, :3, :3]
        out[:, :3, 3] = self.scale * c2w[:, :3, 3] @ self.rotation.T + self.shift
        return out

    def invert(self, c2w: np.ndarray) -> np.ndarray:
        """Camera-to-world matrices `[N, 4, 4]` of the true frame in the estimate's."""
        out = c2w.copy()
        out[:, :3, :3] = self.rotation.T @ c2w[:, :3, :3]
        out[:, :3, 3] = (c2w[:, :3, 3] - self.shift) @ self.rotation / self.scale
        return out


def align_poses(estimate: np.ndarray, truth: np.ndarray) -> Similarity:
    """The similarity that best maps the camera centres of `estimate [N, 4, 4]` onto those of
    `truth [N, 4, 4]` (camera-to-world matrices)."""
    return Similarity(*umeyama(estimate[:, :3, 3], truth[:, :3, 3]))


def pose_errors(estimate: np.ndarray, truth: np.ndarray, radius: float) -> dict[str, float]:
    """Errors of camera-to-world `estimate [N, 4, 4]` against `truth [N, 4, 4]` after
    `align_poses`: mean and largest rotation error (degrees) and mean translation error, in
    world units and as a fraction of `radius` (the scene's scale)."""
    aligned = align_poses(estimate, truth).apply(estimate)
    relative = np.transpose(truth[:, :3, :3], (0, 2, 1)) @ aligned[:, :3, :3]
    cosine = np.clip((np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    degrees = np.degrees(np.arccos(cosine))
    distance = np.linalg.norm(aligned[:, :3, 3] - truth[:, :3, 3], axis=1)
    return {
        "rotation_deg": float(degrees.mean()),
        "rotation_deg_max": float(degrees.max()),
        "translation": float(distance.mean()),
        "translation_fraction": float(distance.mean() / radius),
    }


def into_estimate(cameras: Cameras, views: torch.Tensor, similarity: Similarity) -> Cameras:
    """`cameras` with those of `views` (true poses) moved into the estimate's frame, where a
    field trained on the estimated poses renders them (BARF's evaluation of held-out views)."""
    c2w = cameras.c2w.clone()
    moved = similarity.invert(c2w[views].double().cpu().numpy())
    c2w[views] = torch.from_numpy(moved).to(c2w)
    return replace(cameras, c2w=c2w)


def into_refined_frame(scene: Scene, refined: Cameras) -> Scene | None:
    """`scene` with every camera outside its training split mapped into the frame of `refined`
    (the run's training cameras `[T]` after pose refinement), by the similarity that best maps
    the scene's training camera centres onto the refined ones; so held-out views are rendered
    where the refined field expects them. None when the training cameras did not move (no
    refinement, or a scene made of the refined poses)."""
    train = scene.split("train")
    given = scene.cameras.c2w[train].double()
    moved = refined.c2w.detach().cpu().double()
    if moved.shape != given.shape or (moved - given).abs().max() <= MOVED_TOLERANCE:
        return None
    others = torch.ones(len(scene.cameras.c2w), dtype=torch.bool)
    others[train] = False
    similarity = align_poses(moved.numpy(), given.numpy())
    return replace(scene, cameras=into_estimate(scene.cameras, others.nonzero()[:, 0], similarity))


def fit_pose(model: Model, cameras: Cameras, index: int, image: torch.Tensor, steps: int = POSE_FIT_STEPS, seed: int = 0) -> torch.Tensor:
    """Camera `index`'s camera-to-world matrix `[4, 4]` corrected so that the frozen `model`
    renders `image [H, W, 3]` (float in [0, 1]) best: `c2w @ exp(xi)`, xi `[6]` fitted by
    `steps` Adam steps on `POSE_FIT_BATCH` random pixels each (fixed `seed`)."""
    height, width = image.shape[:2]
    device = cameras.c2w.device
    one = cameras[index]
    xi = torch.zeros(1, 6, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([xi], lr=POSE_FIT_LR)
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.1 ** (1.0 / max(steps, 1)))
    generator = torch.Generator(device=device).manual_seed(seed)
    target = image.reshape(-1, 3)
    with torch.enable_grad(), frozen(model.field):
        for _ in range(steps):
            pixels = torch.randint(height * width, (POSE_FIT_BATCH,), generator=generator, device=device)
            x, y = (pixels % width).float() + 0.5, (pixels // width).float() + 0.5
            moved = replace(one, c2w=one.c2w @ se3_exp(xi))
            rays = camera_rays(moved, torch.zeros_like(pixels), x, y, model.settings.ndc)
            loss = torch.mean((model(rays).rgb - target[pixels]) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            decay.step()
    with torch.no_grad():
        return (one.c2w @ se3_exp(xi))[0]


def fit_poses(model: Model, scene: Scene, views: torch.Tensor) -> Scene:
    """`scene` with the cameras of `views` each fitted to its own image (`fit_pose`)."""
    cameras = scene.cameras.to(model.device)
    c2w = scene.cameras.c2w.clone()
    for index in views.tolist():
        image = scene.images[index].to(model.device).float() / 255.0
        c2w[index] = fit_pose(model, cameras, index, image, seed=index).to(c2w)
    return replace(scene, cameras=replace(scene.cameras, c2w=c2w))
