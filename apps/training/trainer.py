"""The training loop: batch -> render -> loss -> backward -> step -> strategy hooks -> events.

The loop knows no training method: TensoRF's schedule, Strivec's placement and TRaIn are
strategies (`training.strategies`) that act through the few methods below (`restructure`,
`replace_field`, `update_grid`, `request_shrink`, ...), which keep the optimizer's state and
the model consistent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from data import Cameras, PixelBatch, RayBatcher, Scene
from fields import Field, SelfOccupying, field_class, render_step_size
from fields.appearance import codes_of
from render import CONTRACTED_AABB, NDC, Contraction, Model, OccupancyGrid, RenderSettings, camera_rays, foreground_ball
from render.losses import ray_distortion

from ..runs import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint, scene_info, write_json, writing
from . import optim
from .config import TrainConfig, distortion_weight, uses_appearance_codes, uses_contraction
from .strategies import Strategy, strategies_for

__all__ = ["Trainer", "TrainingDiverged", "LoopState"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class LoopState:
    """The loop's own progress; each strategy keeps its own state beside it in the checkpoint."""

    iteration: int = 0
    train_seconds: float = 0.0


class Trainer:
    """Trains one field on one scene.

    Call `step()` repeatedly (or `training.train_run`); `progress` runs from 0 to 1 over
    `config.iters` iterations or `config.budget` seconds of training time, and drives the
    strategies. `model` is the field with its occupancy grid and render settings. With
    appearance codes (`config.appearance`), new fields get `appearance_codes`, one per training
    image in the order of the scene's "train" split, and each training ray is coloured by its
    image's code (0 codes: none). With scene contraction (`config.contraction`), `scene` is the
    given scene with its box replaced by contracted space (`render.CONTRACTED_AABB`), which the
    field fills.
    """

    def __init__(self, config: TrainConfig, scene: Scene, resume: bool = False) -> None:
        field_class(config.field)  # an unknown name fails here, with the known ones
        self.config = config
        contraction = foreground_ball(scene.cameras.c2w[scene.split("train")]) if uses_contraction(config, scene) else None
        if contraction is not None:
            scene = replace(scene, aabb=torch.tensor(CONTRACTED_AABB))
        self.contraction = contraction
        self.scene = scene
        self.device = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.gpu = self.device.type == "cuda"
        batch_size = config.batch_size or (4096 if self.gpu else 1024)
        self.out = Path(config.out)
        self.cameras = scene.cameras.to(self.device)
        self.ndc = NDC(scene.ndc_focal, scene.width, scene.height, scene.ndc_near) if scene.ndc else None
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.appearance_codes = len(scene.split("train")) if uses_appearance_codes(config, scene) else 0
        self.code_of_image = _code_indices(scene.split("train"), len(scene.images)).to(self.device)
        self.state = LoopState()
        self.strategies: list[Strategy] = strategies_for(config, scene)
        self._shrink_requested = False
        self._stopped = False
        checkpoint_path = self.out / CHECKPOINT_NAME
        resumed = resume and checkpoint_path.is_file()
        if resumed:
            checkpoint = load_checkpoint(checkpoint_path, self.device)
            self.model = checkpoint.model
            self._load_train_state(checkpoint.train_state)
            self.optimizer = optim.make_optimizer(self.field)
            if checkpoint.optimizer_state is not None:
                self.optimizer.load_state_dict(checkpoint.optimizer_state)
        else:
            field = self._make_field().to(self.device)
            grid = OccupancyGrid(field.aabb, config.occupancy_resolution).to(self.device)
            settings = RenderSettings(
                step_size=render_step_size(field, config.step_ratio),
                # NDC rays carry their own end (`Rays.far`); the scene's 0..1 is in NDC units;
                # contracted space reaches to infinity
                near=0.0 if scene.ndc else scene.near,
                far=1e10 if scene.ndc or contraction is not None else scene.far,
                background=scene.background.tolist(),
                ndc=self.ndc,
                cone_angle=config.cone_angle,
                contraction=contraction,
            )
            self.model = Model(field, grid, settings)
            self.optimizer = optim.make_optimizer(self.field)
            if isinstance(field, SelfOccupying):  # its grid is exact from the start: no march through all of the box
                self.update_grid()
        self.distortion_weight = distortion_weight(config, self.model.settings.contraction is not None)
        self.batcher = RayBatcher(scene, "train", batch_size, seed=config.seed + self.state.iteration, device=self.device)
        #: the settings the last training batch was rendered with (`_batch_settings`)
        self.batch_settings = self.model.settings
        self.start_events = _contraction_events(self.model.settings.contraction)
        self.start_events += [event for s in self.strategies for event in s.on_start(self, resumed)]
        self.update_step_size()

    def _make_field(self) -> Field:
        """The first strategy's starting field (a coarse stage), else the configured field's
        `from_scene` with the strategies' overrides (grid size), `--decoder` and, with
        `--appearance`, a code per training image."""
        overrides: dict[str, Any] = {"decoder": self.config.decoder, "appearance_codes": self.appearance_codes}
        for strategy in self.strategies:
            overrides.update(strategy.field_overrides(self))
        for strategy in self.strategies:
            field = strategy.make_field(self, overrides)
            if field is not None:
                return field
        return field_class(self.config.field).from_scene(self.scene, self.gpu, **overrides)

    # --- what strategies use ------------------------------------------------------------
    @property
    def field(self) -> Field:
        return self.model.field

    @property
    def grid(self) -> OccupancyGrid:
        return self.model.grid

    @property
    def progress(self) -> float:
        if self.config.budget is not None:
            return min(1.0, self.state.train_seconds / self.config.budget)
        return min(1.0, self.state.iteration / max(1, self.config.iters))

    @property
    def done(self) -> bool:
        return self._stopped or self.progress >= 1.0

    def stop(self) -> None:
        """End training after this step, short of the schedule (a caller's own time limit):
        `done` turns true, `progress` stays where it is."""
        self._stopped = True

    def strategy(self, name: str) -> Strategy | None:
        """The strategy called `name` ("tensorf", "strivec", "train"), if this run has it."""
        return next((s for s in self.strategies if s.name == name), None)

    def broadcast(self, hook: str, *args: Any) -> list[str]:
        """Call `hook` on every strategy; the events they return, in order."""
        events: list[str] = []
        for strategy in self.strategies:
            events += getattr(strategy, hook)(self, *args) or []
        return events

    def allows(self, action: str) -> bool:
        """Whether every strategy allows `action` now (see `Strategy.allows`)."""
        return all(strategy.allows(self, action) for strategy in self.strategies)

    def step_size(self) -> float:
        """The step of training batches: the field's render step times the strategies' factors."""
        return render_step_size(self.field, self.config.step_ratio) * math.prod(s.step_scale(self) for s in self.strategies)

    def training_cameras(self) -> Cameras:
        """The cameras training rays are cast from: the scene's, through every strategy's
        `cameras` hook (pose refinement corrects them, differentiably)."""
        cameras = self.cameras
        for strategy in self.strategies:
            cameras = strategy.cameras(self, cameras)
        return cameras

    def update_step_size(self) -> None:
        self.model.settings.step_size = self.step_size()

    def update_grid(self, fraction: float = 1.0, step_size: float | None = None) -> None:
        """Update the occupancy grid from the field's density (a random `fraction` of the cells),
        or all of it from a `SelfOccupying` field's own account."""
        step = self.model.settings.step_size if step_size is None else step_size
        if isinstance(self.field, SelfOccupying):
            self.grid.take_from(self.field, step, self.config.occupancy_threshold)
            return
        self.grid.update(
            self.field.density,
            step,
            self.config.occupancy_threshold,
            fraction=fraction,
            generator=self.generator,
            contracted=self.model.settings.contraction is not None,
        )

    def request_shrink(self) -> None:
        """Ask for a box shrink at the next schedule check (if carving is allowed then)."""
        self._shrink_requested = True

    def take_shrink_request(self) -> bool:
        requested, self._shrink_requested = self._shrink_requested, False
        return requested

    def restructure(self, change: Callable[[Field], Any], keep_state: bool = True) -> Any:
        """Apply a structural change to the field, keeping the optimizer's state unless told not
        to (`optim.restructure`); returns what `change` returned."""
        self.model.field, self.optimizer, result = optim.restructure(self.field, self.optimizer, change, keep_state)
        return result

    def replace_field(self, field: Field, keep: Callable[[str], bool]) -> None:
        """Train `field` from now on; parameters `keep` accepts keep their optimizer state
        (`optim.replace_field`). Strategies are told with `broadcast("on_field_replaced")`."""
        self.optimizer = optim.replace_field(self.field, field, self.optimizer, keep)
        self.model.field = field

    # --- one iteration ------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """One optimization step and the strategies' hooks; returns loss, psnr (of the batch),
        rays/s, samples per ray and the events of this step."""
        start = time.perf_counter()
        self.broadcast("before_step")
        batch = self.batcher.next()
        code = self.code_of_image[batch.camera_indices] if codes_of(self.field) is not None else None
        rays = camera_rays(self.training_cameras(), batch.camera_indices, batch.x, batch.y, self.ndc, code)
        with_distortion = self.distortion_weight > 0
        self.batch_settings = self._batch_settings()
        output = self.model(rays, self.batch_settings, jitter=True, generator=self.generator, with_samples=with_distortion)
        target, weights = self._targets(batch)
        error = (output.rgb - target) ** 2
        mse = torch.mean(error)
        fit = mse if weights is None else torch.mean(error * weights[:, None])
        loss = fit + sum(self.field.regularization().values(), mse.new_zeros(()))
        if with_distortion:
            radius = None if self.model.settings.contraction is None else self.model.world_scale
            loss = loss + self.distortion_weight * ray_distortion(output.samples, radius).mean()
        for strategy in self.strategies:
            extra = strategy.loss(self, batch, output)
            loss = loss if extra is None else loss + extra
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss.item()} at iteration {self.state.iteration + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.state.iteration += 1
        elapsed = time.perf_counter() - start
        self.state.train_seconds += elapsed
        batch_mse = mse.item()
        events = self.broadcast("after_step", batch_mse)
        if events:
            self.update_step_size()
        self._set_learning_rates()
        self.state.train_seconds += time.perf_counter() - start - elapsed
        return {
            "loss": loss.item(),
            "psnr": -10.0 * math.log10(max(batch_mse, 1e-10)),
            "rays_per_s": len(rays) / elapsed,
            "samples_per_ray": output.num_samples / len(rays),
            "events": events,
        }

    def _targets(self, batch: PixelBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The colours `[B, 3]` the batch's render is compared with and the rays' loss weights
        (`[B]`, or None): the batch's pixels, through every strategy's `targets` hook."""
        rgb, weights = batch.rgb, None
        for strategy in self.strategies:
            rgb, weights = strategy.targets(self, batch, rgb, weights)
        return rgb, weights

    def _set_learning_rates(self) -> None:
        scale = math.prod(s.lr_scale(self) for s in self.strategies)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * scale

    def finish(self) -> list[str]:
        """End of training: the strategies' last word (TRaIn truncates a field short of its full rank)."""
        events = self.broadcast("finish")
        self.update_step_size()
        return events

    def _batch_settings(self) -> RenderSettings:
        """Render settings for one training batch. Scenes on a non-white background get a white
        one for every other batch at random, as TensoRF does: over a black background a faint
        field whose colour is not evaluated yet gets no gradient towards more density."""
        settings = self.model.settings
        if settings.background == [1.0, 1.0, 1.0] or torch.rand((), generator=self.generator).item() < 0.5:
            return settings
        return replace(settings, background=[1.0, 1.0, 1.0])

    # --- persistence --------------------------------------------------------------------
    def _load_train_state(self, train_state: dict[str, Any]) -> None:
        self.state = LoopState(int(train_state.get("iteration", 0)), float(train_state.get("train_seconds", 0.0)))
        saved = train_state.get("strategies")
        for strategy in self.strategies:
            # checkpoints before strategies kept every counter in one flat dict
            strategy.load_state_dict(train_state if saved is None else saved.get(strategy.name, {}))

    def checkpoint(self) -> Checkpoint:
        """The model (rendered at the normal step, whatever the training batches use) and the
        loop's, strategies' and optimizer's state."""
        model = self.model
        settings = replace(model.settings, step_size=render_step_size(model.field, self.config.step_ratio))
        train_state = {**asdict(self.state), "strategies": {s.name: s.state_dict() for s in self.strategies}}
        return Checkpoint(Model(model.field, model.grid, settings), train_state, self.optimizer.state_dict())

    def save(self) -> Path:
        """Write the checkpoint, config.json (whose training cameras are `training_cameras()`) and
        the strategies' `records` atomically; returns the checkpoint path. A failed
        write raises `runs.RunWriteError` naming the file and the reason ("No space left on
        device"); the previous checkpoint stays as it was."""
        path, config_path = self.out / CHECKPOINT_NAME, self.out / "config.json"
        with torch.no_grad():
            scene = replace(self.scene, cameras=self.training_cameras().to("cpu"))
            records = {name: payload for s in self.strategies for name, payload in s.records(self).items()}
        writes = (
            (path, lambda: save_checkpoint(path, self.checkpoint())),
            (config_path, lambda: write_json(config_path, {"train": self.config.to_dict(), "scene": scene_info(scene)})),
            *((self.out / name, lambda name=name, payload=payload: write_json(self.out / name, payload)) for name, payload in records.items()),
        )
        for target, write in writes:
            if path.is_file():
                kept = f"the last checkpoint in {self.out} is kept; continue with --resume once the folder can be written"
            else:
                kept = "no checkpoint has been written yet"
            with writing(target, kept):
                write()
        return path


def _contraction_events(contraction: Contraction | None) -> list[str]:
    """The log line saying how space is modelled, when it is contracted."""
    if contraction is None:
        return []
    center = ", ".join(f"{v:.2f}" for v in contraction.center)
    return [
        f"unbounded scene: space beyond the foreground ball (centre {center}, radius {contraction.radius:.3g}) "
        "is contracted into a shell, so the background is modelled too (--contraction off keeps the box)"
    ]


def _code_indices(train: torch.Tensor, num_images: int) -> torch.Tensor:
    """Each scene image's appearance-code index, `[num_images]` int64: its position in the
    "train" split `train [T]` (-1 for held-out images, which have no code)."""
    codes = torch.full((num_images,), -1, dtype=torch.long)
    codes[train.cpu()] = torch.arange(len(train))
    return codes
