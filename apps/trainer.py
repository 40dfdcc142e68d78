"""Training a field on a scene with TensoRF's schedule, with checkpoints and resume."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from data import Cameras, RayBatcher, Scene
from fields import FIELDS, Field, Placeable, Slimmable, Upsampleable
from fields.slimming import TRAIN_EPSILON
from fields.tensor_grid import resolution_for_voxels
from render import NDC, OccupancyGrid, RenderSettings, camera_rays, render_rays

from .checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from .distill import distill_at_points, occupied_point_sampler
from .presets import field_kwargs, regularization_weights
from .rank_incrementation import RankIncrementation
from .schedule import Schedule

__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "scene_info", "train_cameras", "write_json"]


#: `Placeable` fields are placed at the first upsample; until the second their density is faint
#: everywhere, so the occupancy grid stays the coarse VM's, and the box is shrunk (and empty
#: tensors pruned) from the third on
SETTLE_UPSAMPLES = 2
#: Adam steps that fit a freshly placed field to the coarse VM before training goes on
PLACEMENT_DISTILL_STEPS = 100
#: when a field's density is replaced (a placed field after the coarse VM; TRaIn's full rank
#: after its blobby low ranks), the old running density fades within this many updates of each cell
FADE_UPDATES = 8
#: TRaIn's low ranks are smooth (a few separable products) and over-cover empty space, so they
#: march about twice the samples per ray; until the full rank is in, rays step this much farther
LOW_RANK_STEP_FACTOR = 2.0


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as the run's config.json).

    iters: length of the run in iterations, unless `budget` (seconds of training) is given.
    batch_size: rays per iteration; 0 picks 4096 on a GPU (TensoRF) and 1024 on the CPU, where
        four small steps cost what one large one does and make more progress.
    grid_init, grid_final: factor grid resolution per axis; 0 picks them from the image size.
    cone_angle: cone stepping for large scenes (see `RenderSettings`); 0 keeps fixed steps.
    slimmable: train with SlimmeRF's rank incrementation (`RankIncrementation`) so that the
        field renders well at every rank; upsilon, eta: its thresholds (None: SlimmeRF's
        defaults for the kind of scene).
    """

    data: str
    field: str = "vm"
    out: str = "runs/run"
    downsample: float = 1.0
    iters: int = 30000
    budget: float | None = None
    batch_size: int = 0
    lr: float = 0.02
    lr_network: float = 1e-3
    step_ratio: float = 0.5
    grid_init: int = 0
    grid_final: int = 0
    occupancy_resolution: int = 128
    occupancy_every: int = 16
    occupancy_warmup: int = 16
    occupancy_threshold: float = 1e-3
    cone_angle: float = 0.0
    slimmable: bool = False
    upsilon: float | None = None
    eta: int | None = None
    decoder: str | None = None
    checkpoint_every: float = 60.0
    seed: int = 0
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainState:
    """Progress bookkeeping that a checkpoint carries so `--resume` continues the same run."""

    iteration: int = 0
    train_seconds: float = 0.0
    upsamples_done: int = 0
    shrinks_done: int = 0
    shrunk: bool = False
    last_lr_reset: float = 0.0
    previous_loss: float | None = None
    last_rank_increment: int = 0
    coarse: bool = False


def default_grid(scene: Scene) -> tuple[int, int]:
    """Grid resolutions that suit the image size: about 1.3 voxels per pixel of the longer side
    at the end (TensoRF's 300^3 for 800x800 images), starting at 43% of that (TensoRF's 128)."""
    final = int(min(300, max(64, round(1.28 * max(scene.width, scene.height) / 8) * 8)))
    return max(32, round(final * 128 / 300)), final


class Trainer:
    """Trains one field on one scene.

    Call `step()` repeatedly (or `run()`); `progress` runs from 0 to 1 over `config.iters`
    iterations or `config.budget` seconds of training time, and drives the schedule.
    """

    def __init__(self, config: TrainConfig, scene: Scene, resume: bool = False) -> None:
        if config.field not in FIELDS:
            raise ValueError(f"unknown field '{config.field}' (known: {', '.join(sorted(FIELDS))})")
        self.config = config
        self.scene = scene
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        batch_size = config.batch_size or (4096 if self.device.type == "cuda" else 1024)
        self.out = Path(config.out)
        grid_init, grid_final = default_grid(scene)
        self.schedule = Schedule(grid_init=config.grid_init or grid_init, grid_final=config.grid_final or grid_final)
        self.cameras = scene.cameras.to(self.device)
        self.ndc = NDC(scene.ndc_focal, scene.width, scene.height, scene.ndc_near) if scene.ndc else None
        self.batcher = RayBatcher(scene, "train", batch_size, seed=config.seed, device=self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.state = TrainState()
        self.rank_incrementation: RankIncrementation | None = None  # set once the field exists
        checkpoint_path = self.out / CHECKPOINT_NAME
        if resume and checkpoint_path.is_file():
            checkpoint = load_checkpoint(checkpoint_path, self.device)
            self.field, self.grid, self.settings = checkpoint.field, checkpoint.grid, checkpoint.settings
            self.state = TrainState(**checkpoint.train_state)
            self.optimizer = self._make_optimizer()
            if checkpoint.optimizer_state is not None:
                self.optimizer.load_state_dict(checkpoint.optimizer_state)
            self.batcher = RayBatcher(scene, "train", batch_size, seed=config.seed + self.state.iteration, device=self.device)
        else:
            self.field = self._make_field().to(self.device)
            self.grid = OccupancyGrid(self.field.aabb, config.occupancy_resolution).to(self.device)
            self.settings = RenderSettings(
                step_size=self._step_size(),
                # NDC rays carry their own end (`Rays.far`); the scene's 0..1 is in NDC units
                near=0.0 if scene.ndc else scene.near,
                far=1e10 if scene.ndc else scene.far,
                background=scene.background.tolist(),
                ndc=self.ndc,
                cone_angle=config.cone_angle,
            )
            self.optimizer = self._make_optimizer()
        self._apply_regularization_weights()
        self.rank_incrementation = self._start_rank_incrementation(fresh=not self.state.iteration)
        self.settings.step_size = self._step_size()

    # --- construction -------------------------------------------------------------------
    def _make_field(self) -> Field:
        """The field to start with: `config.field`, or for a `Placeable` field (trivec) the coarse
        VM whose occupancy grid will place it (`_place`, at the first upsample)."""
        name = self.config.field
        if issubclass(FIELDS[name], Placeable):
            self.state.coarse, name = True, "vm"
        aabb = self.scene.aabb.float()
        resolution = resolution_for_voxels(self.schedule.grid_init**3, aabb)
        return FIELDS[name](aabb=aabb, resolution=resolution, **self._field_kwargs(name))

    def _field_kwargs(self, name: str) -> dict[str, Any]:
        kwargs = field_kwargs(name, ndc=self.scene.ndc, scene_aabb=self.scene.aabb.float())
        if self.config.decoder is not None:
            kwargs["decoder"] = self.config.decoder
        return kwargs

    def _place(self) -> str:
        """End of the coarse stage: build `config.field` where the coarse VM's occupancy grid is
        occupied and distill the VM into it (its decoder copied, density and appearance features
        fitted at points of the occupied cells), so training goes on from the VM's image instead
        of a blank one; the grid carries over (fading, see `FADE_UPDATES`); TRaIn (if asked for)
        starts now, so the distillation fits rank 1."""
        cls, coarse = FIELDS[self.config.field], self.field
        self.field = cls.from_occupancy(self.grid.occupied, self.grid.aabb, **self._field_kwargs(self.config.field)).to(self.device)
        self.state.coarse = False
        self.grid.fade(self._step_size(), self.config.occupancy_threshold, FADE_UPDATES)
        self._apply_regularization_weights()
        self.rank_incrementation = self._start_rank_incrementation(fresh=True)
        self.field.decoder.load_state_dict(coarse.decoder.state_dict())
        sampler = occupied_point_sampler(self.grid, self.generator)
        loss = distill_at_points(coarse, self.field, sampler, PLACEMENT_DISTILL_STEPS, self._step_size())
        counts = self.field.config().get("num_tensors")
        return (
            f"coarse stage done: {self.config.field} placed from the occupancy grid ({counts} tensors per scale), "
            f"distilled from the coarse field (loss {loss:.2g})"
        )

    def _start_rank_incrementation(self, fresh: bool) -> RankIncrementation | None:
        """With `config.slimmable`: the TRaIn thresholds; a new run starts at rank 1 and the
        components above the active rank get SlimmeRF's training epsilon."""
        if not self.config.slimmable or self.state.coarse:
            return None
        if not isinstance(self.field, Slimmable):
            raise ValueError(f"--slimmable needs a rank-ordered field (vm, cp or trivec), not '{self.config.field}'")
        schedule = RankIncrementation.for_scene(self.scene.ndc, self.config.upsilon, self.config.eta)
        if fresh:
            self.field.set_active_rank(1)
        self.field.rank_epsilon = TRAIN_EPSILON
        return schedule

    def _make_optimizer(self) -> torch.optim.Optimizer:
        scale = self.schedule.lr_scale(self.progress, self.state.last_lr_reset)
        groups = self.field.param_groups(self.config.lr * scale, self.config.lr_network * scale)
        for group in groups:
            group["initial_lr"] = self.config.lr if group["name"] == "factors" else self.config.lr_network
        return torch.optim.Adam(groups, betas=(0.9, 0.99), fused=True)

    def _render_step_size(self) -> float:
        """The ray-marching step the field is rendered with (and saved with)."""
        voxel = getattr(self.field, "voxel_size", None)
        if voxel is None:
            return float((self.field.aabb[1] - self.field.aabb[0]).norm() / 512)
        return float(voxel.mean()) * self.config.step_ratio

    def _step_size(self) -> float:
        """The step of training batches: the render step, coarser for TRaIn's low ranks."""
        return self._render_step_size() * (LOW_RANK_STEP_FACTOR if self._below_full_rank() else 1.0)

    def _below_full_rank(self) -> bool:
        """Whether TRaIn is running and has not reached the full rank yet."""
        return self.rank_incrementation is not None and self.field.active_rank < self.field.ranks

    def _apply_regularization_weights(self) -> None:
        if hasattr(self.field, "reg_weights"):
            self.field.reg_weights.update(regularization_weights(ndc=self.scene.ndc, shrunk=self.state.shrunk))

    # --- progress and schedule ----------------------------------------------------------
    @property
    def progress(self) -> float:
        if self.config.budget is not None:
            return min(1.0, self.state.train_seconds / self.config.budget)
        return min(1.0, self.state.iteration / max(1, self.config.iters))

    @property
    def done(self) -> bool:
        return self.progress >= 1.0

    def _run_schedule(self, shrink_now: bool = False) -> list[str]:
        """Apply the milestones that the current progress has passed (and shrink the box now
        with `shrink_now`); returns what happened."""
        events = []
        settling = isinstance(self.field, Placeable) and self.state.upsamples_done < SETTLE_UPSAMPLES
        update_due = self.state.iteration >= self.config.occupancy_warmup and self.state.iteration % self.config.occupancy_every == 0
        if update_due and not settling:  # while settling, the grid stays the coarse VM's
            # every cell while the geometry forms, then a random quarter per update (as nerfacc)
            fraction = 1.0 if self.state.iteration < 16 * self.config.occupancy_every else 0.25
            self.grid.update(
                self.field.density, self.settings.step_size, self.config.occupancy_threshold, fraction=fraction, generator=self.generator
            )
        if isinstance(self.field, Upsampleable):
            shrink_due = self._passed(self.state.shrinks_done, gated=False) and self.state.iteration >= 2 * self.config.occupancy_warmup
            upsample_due = self._passed(self.state.upsamples_done, gated=True)
            if (shrink_due or upsample_due or shrink_now) and not settling and self._may_carve():
                events.append(self._shrink())
                while self._passed(self.state.shrinks_done, gated=False):
                    self.state.shrinks_done += 1
            if upsample_due:
                while self._passed(self.state.upsamples_done, gated=True):
                    self.state.upsamples_done += 1
                if self.state.coarse:
                    events.append(self._place())
                events.append(self._upsample())
        if events:
            self.settings.step_size = self._step_size()
            self.optimizer = self._make_optimizer()
        scale = self.schedule.lr_scale(self.progress, self.state.last_lr_reset)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * scale
        return events

    def _passed(self, done: int, gated: bool) -> bool:
        """Whether milestone number `done` has been passed. Gated (upsampling), a budget run also
        waits for the iteration a `Schedule.min_iterations`-long run would be at, so a short
        budget does not upsample a field that has seen only a few dozen batches; shrinking,
        exact and cheap, is not gated."""
        if done >= len(self.schedule.upsample_at):
            return False
        at = self.schedule.upsample_at[done]
        if gated and self.config.budget is not None and self.state.iteration < at * self.schedule.min_iterations:
            return False
        return self.progress >= at

    def _shrink(self) -> str:
        self.grid.update(self.field.density, self.settings.step_size, self.config.occupancy_threshold, generator=self.generator)
        box = self.grid.occupied_box()
        self.state.shrunk = True
        self._apply_regularization_weights()
        if box is None:
            return "shrink skipped: occupancy grid is empty"
        before = self.field.aabb.clone()
        self.field.shrink(torch.stack([torch.maximum(box[0], before[0]), torch.minimum(box[1], before[1])]))
        pruned = self._prune()
        if torch.equal(self.field.aabb, before):
            return "box unchanged: the occupied region fills it" + pruned
        grid = OccupancyGrid(self.field.aabb, self.config.occupancy_resolution).to(self.device)
        grid.inherit(self.grid)
        self.grid = grid
        self.grid.update(self.field.density, self._step_size(), self.config.occupancy_threshold, generator=self.generator)
        return f"box shrunk to {[round(v, 3) for v in self.field.aabb.flatten().tolist()]}, resolution {self.field.resolution}" + pruned

    def _may_carve(self) -> bool:
        """Whether the box may shrink (and empty parts be pruned) now: a placed field waits while
        TRaIn is below the full rank, since low ranks of local tensors stay faint where the scene
        is thin and a shrink would cut those parts off for good (VM's low ranks over-cover instead)."""
        return not (isinstance(self.field, Placeable) and self._below_full_rank())

    def _prune(self) -> str:
        """Drop a `Placeable` field's parts the occupancy grid finds empty."""
        if not isinstance(self.field, Placeable):
            return ""
        removed = self.field.prune(self.grid.occupied, self.grid.aabb)
        return f"; {removed} empty tensors pruned" if removed else ""

    def _upsample(self) -> str:
        """Upsample to the voxel size of the last milestone passed (`upsamples_done` of them).

        Voxel counts are those of the scene's full box: after a shrink the same voxel size takes
        fewer voxels, so shrinking saves memory and empty-space steps without changing the
        sampling density the schedule asks for.
        """
        box_fraction = float((self.field.aabb[1] - self.field.aabb[0]).prod() / (self.scene.aabb[1] - self.scene.aabb[0]).prod())
        voxels = self.schedule.voxel_counts()[self.state.upsamples_done - 1] * box_fraction
        resolution = resolution_for_voxels(voxels, self.field.aabb)
        self.field.upsample(resolution)
        self.state.last_lr_reset = self.progress
        return f"upsampled to {resolution}"

    # --- one iteration ------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One optimization step; returns loss, psnr (of the batch) and rays/s."""
        start = time.perf_counter()
        batch = self.batcher.next()
        rays = camera_rays(self.cameras, batch.camera_indices, batch.x, batch.y, self.ndc)
        output = render_rays(self.field, self.grid, rays, self._batch_settings(), jitter=True, generator=self.generator)
        mse = torch.mean((output.rgb - batch.rgb) ** 2)
        loss = mse + sum(self.field.regularization().values(), mse.new_zeros(()))
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at iteration {self.state.iteration + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.state.iteration += 1
        elapsed = time.perf_counter() - start
        self.state.train_seconds += elapsed
        rank_events = self._increment_rank(mse.item())
        full_rank_reached = bool(rank_events) and not self._below_full_rank()
        if full_rank_reached:
            self._leave_low_ranks()
        events = rank_events + self._run_schedule(shrink_now=full_rank_reached)
        self.state.train_seconds += time.perf_counter() - start - elapsed
        return {
            "loss": loss.item(),
            "psnr": -10.0 * math.log10(max(mse.item(), 1e-10)),
            "rays_per_s": len(rays) / elapsed,
            "samples_per_ray": output.num_samples / len(rays),
            "events": events,
        }

    def _increment_rank(self, loss: float) -> list[str]:
        """TRaIn: add a rank when the batch loss changed abruptly (see `RankIncrementation`)."""
        schedule, field, state = self.rank_incrementation, self.field, self.state
        previous, state.previous_loss = state.previous_loss, loss
        if schedule is None or field.active_rank >= field.ranks:
            return []
        if not schedule.due(previous, loss, state.iteration, state.last_rank_increment):
            return []
        field.set_active_rank(field.active_rank + 1)
        state.last_rank_increment = state.iteration
        change = schedule.relative_change(previous, loss)
        return [f"rank {field.active_rank} of {field.ranks} (TRaIn: batch loss changed {change:.0%})"]

    def _leave_low_ranks(self) -> None:
        """TRaIn reached the full rank: march at the normal step again and let the occupancy of
        the blobby low ranks fade (the box is shrunk again by the caller)."""
        self.settings.step_size = self._step_size()
        self.grid.fade(self.settings.step_size, self.config.occupancy_threshold, FADE_UPDATES)

    def finish(self) -> list[str]:
        """End of training: a slimmable run that stopped short of the full rank is truncated to
        the rank it reached (the components above it never trained). Returns what happened."""
        field = self.field
        if self.rank_incrementation is None or field.active_rank >= field.ranks:
            return []
        self.field = field.slim(field.active_rank)
        self.settings.step_size = self._step_size()
        self.optimizer = self._make_optimizer()
        return [f"TRaIn reached rank {field.active_rank} of {field.ranks}: the field is truncated to it"]

    def _batch_settings(self) -> RenderSettings:
        """Render settings for one training batch. Scenes on a non-white background get a white
        one for every other batch at random, as TensoRF does: over a black background a faint
        field whose colour is not evaluated yet gets no gradient towards more density."""
        if self.settings.background == [1.0, 1.0, 1.0] or torch.rand((), generator=self.generator).item() < 0.5:
            return self.settings
        return replace(self.settings, background=[1.0, 1.0, 1.0])

    # --- persistence --------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        settings = replace(self.settings, step_size=self._render_step_size())
        return Checkpoint(self.field, self.grid, settings, asdict(self.state), self.optimizer.state_dict())

    def save(self) -> Path:
        """Write the checkpoint and config.json atomically; returns the checkpoint path."""
        path = self.out / CHECKPOINT_NAME
        save_checkpoint(path, self.checkpoint())
        write_json(self.out / "config.json", {"train": self.config.to_dict(), "scene": scene_info(self.scene)})
        return path


def scene_info(scene: Scene) -> dict[str, Any]:
    """What a run records about its scene (enough for `eval` to reload it)."""
    train = scene.split("train")
    cameras = scene.cameras[train]
    return {
        "source": str(scene.source),
        "kind": scene.kind,
        "downsample": scene.downsample,
        "width": scene.width,
        "height": scene.height,
        "num_train": int(len(train)),
        "forward_facing": scene.ndc,
        "train_cameras": {
            "c2w": [[round(v, 6) for v in m.flatten().tolist()] for m in cameras.c2w],
            "fx": cameras.fx[0].item(),
            "fy": cameras.fy[0].item(),
            "cx": cameras.cx[0].item(),
            "cy": cameras.cy[0].item(),
        },
    }


def train_cameras(info: dict[str, Any]) -> Cameras:
    """The training cameras recorded by `scene_info`."""
    record = info["train_cameras"]
    c2w = torch.tensor(record["c2w"], dtype=torch.float32).view(-1, 4, 4)
    return Cameras(c2w, record["fx"], record["fy"], record["cx"], record["cy"], info["width"], info["height"])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
