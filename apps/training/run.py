"""A whole training run: claim the run folder, load the scene, train with a progress bar,
checkpoint, evaluate."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

import cuda_ext
from data import Scene, load_scene, scene_summary
from fields import Slimmable
from fields.appearance import codes_of

from ..runs import CHECKPOINT_NAME, PROGRESS_NAME, ProgressLog, claim_run_folder, write_json, writing
from .config import TrainConfig
from .final_eval import FINAL_EVAL_SHARE, FINAL_EVAL_VIEWS, final_evaluation
from .strategies import GaussiansLost
from .trainer import Trainer, TrainingDiverged

__all__ = ["train_run", "RunInterrupted", "checkpoint_interval"]

#: the shortest and longest default checkpoint interval (seconds), and the run's share of it
CHECKPOINT_EVERY_MIN, CHECKPOINT_EVERY_MAX, CHECKPOINT_EVERY_FRACTION = 5.0, 60.0, 0.1


#: signals that end a run the way Ctrl-C does (saving first): `kill`, a closed terminal
SAVING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class RunInterrupted(RuntimeError):
    """Training stopped early (Ctrl-C, SIGTERM, SIGHUP, a diverged loss or a Gaussian field that
    emptied) after saving the last good checkpoint."""


class _Terminated(KeyboardInterrupt):
    """A `SAVING_SIGNALS` signal, raised in the training loop as Ctrl-C is."""


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """In the main thread, turn `SAVING_SIGNALS` into `_Terminated` for the block (then restore
    the handlers); elsewhere (signals reach only the main thread) do nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(number: int, _frame: Any) -> None:
        raise _Terminated(signal.Signals(number).name)

    previous = {number: signal.signal(number, interrupt) for number in SAVING_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def train_run(
    config: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    scene: Scene | None = None,
    on_step: Callable[[Trainer], None] | None = None,
    log: Callable[[str], None] = print,
    final_eval_views: int | None = FINAL_EVAL_VIEWS,
    final_eval_share: float | None = FINAL_EVAL_SHARE,
) -> dict[str, Any]:
    """Train `config` to the end of its schedule and write the run folder.

    Before the scene is loaded the folder is claimed (`runs.claim_run_folder`): it must be
    writable and not locked by another run; a folder holding another run is refused unless
    `resume` continues it (same scene, field and downsampling) or `overwrite` replaces it;
    temporary files of a killed save are removed. The lock is held until the run ends.

    Writes `checkpoint.safetensors` (every `checkpoint_interval` seconds, and before the final
    evaluation), `config.json`, `metrics.json`, `renders/` (held-out views) and `progress.jsonl`
    (iteration, training seconds, loss and batch PSNR about once a second: `runs.ProgressLog`,
    kept up to the resumed iteration on `resume`). A failed write
    raises `runs.RunWriteError` naming the file (the previous checkpoint is kept). Ctrl-C, SIGTERM
    and SIGHUP save a checkpoint and raise `RunInterrupted`; a diverged loss or a Gaussian field that
    emptied (`strategies.GaussiansLost`) keeps the last checkpoint and raises it too.
    `on_step(trainer)` runs after every step (benchmarks evaluate from there).
    The final evaluation scores `final_eval_views` held-out views (None: all) in at most
    `final_eval_share` of the training time (None: at up to 800x600 however long it takes; see
    `final_eval`). Returns the metrics dict.
    """
    out = Path(config.out)
    with claim_run_folder(out, config.to_dict(), resume=resume, overwrite=overwrite) as events, _signals_interrupt():
        for event in events:
            log(event)
        return _train(config, out, resume, scene, on_step, log, final_eval_views, final_eval_share)


def checkpoint_interval(config: TrainConfig, trainer: Trainer) -> float:
    """Seconds between checkpoints: `config.checkpoint_every` when set, else a tenth of the
    run's length within 5..60 s. A `--budget` run's length is its budget; an `--iters` run's is
    estimated from its seconds per iteration so far (60 s before the first iteration)."""
    if config.checkpoint_every is not None:
        return config.checkpoint_every
    if config.budget is not None:
        length = config.budget
    elif trainer.state.iteration:
        length = trainer.state.train_seconds / trainer.state.iteration * config.iters
    else:
        return CHECKPOINT_EVERY_MAX
    return min(max(CHECKPOINT_EVERY_FRACTION * length, CHECKPOINT_EVERY_MIN), CHECKPOINT_EVERY_MAX)


def _train(
    config: TrainConfig,
    out: Path,
    resume: bool,
    scene: Scene | None,
    on_step: Callable[[Trainer], None] | None,
    log: Callable[[str], None],
    final_eval_views: int | None,
    final_eval_share: float | None,
) -> dict[str, Any]:
    """`train_run` in its claimed folder."""
    if scene is None:
        scene = load_scene(config.data, config.downsample)
    log(scene_summary(scene))
    if resume and not (out / CHECKPOINT_NAME).is_file():
        log(f"--resume: no checkpoint in {out}, starting a new run")
    log(f"native extension: {_describe(cuda_ext.status())}")  # builds it now, outside the training clock
    trainer = Trainer(config, scene, resume=resume)
    if trainer.state.iteration:
        log(f"resumed at iteration {trainer.state.iteration} ({trainer.progress:.0%} of the run)")
    for event in trainer.start_events:
        log(event)
    codes = codes_of(trainer.field)
    with_codes = "" if codes is None else f", appearance codes for {codes.weight.shape[0]} training images"
    log(f"{trainer.field.name}: {trainer.field.num_parameters():,} parameters, grid {trainer.field.resolution}{with_codes}")
    total = config.iters if config.budget is None else None
    with writing(out / PROGRESS_NAME):
        progress = ProgressLog(out / PROGRESS_NAME, trainer.state.iteration)
    bar = tqdm(total=total, initial=trainer.state.iteration, unit="it", dynamic_ncols=True, disable=None)
    last_save = time.perf_counter()
    try:
        while not trainer.done:
            stats = trainer.step()
            with writing(out / PROGRESS_NAME):
                progress.record(trainer.state.iteration, trainer.state.train_seconds, stats["loss"], stats["psnr"])
            bar.update(1)
            bar.set_postfix(
                loss=f"{stats['loss']:.4f}", psnr=f"{stats['psnr']:.2f}", rays_s=f"{stats['rays_per_s']:,.0f}", refresh=False
            )
            for event in stats["events"]:
                bar.write(f"[{trainer.state.iteration}] {event}")
            if on_step is not None:
                on_step(trainer)
            if time.perf_counter() - last_save > checkpoint_interval(config, trainer):
                trainer.save()
                last_save = time.perf_counter()
    except KeyboardInterrupt as stop:
        bar.close()
        trainer.save()
        how = f"stopped by {stop}" if isinstance(stop, _Terminated) else "interrupted"
        raise RunInterrupted(f"{how} at iteration {trainer.state.iteration}; checkpoint saved, continue with --resume") from None
    except (TrainingDiverged, GaussiansLost) as error:
        saved = "the last good checkpoint is kept" if (out / CHECKPOINT_NAME).is_file() else "no checkpoint had been written yet"
        raise RunInterrupted(f"{error}; {saved} in {out}") from None
    finally:
        bar.close()
        with writing(out / PROGRESS_NAME):
            progress.close()
    for event in trainer.finish():
        log(event)
    trainer.save()  # before the evaluation, which takes a while: a kill there loses no training
    refined = trainer.training_cameras()[scene.split("train")] if trainer.strategy("poses") is not None else None
    result = final_evaluation(trainer.model, scene, trainer.state.train_seconds, out, log, final_eval_views, final_eval_share, refined)
    kept = f"the trained checkpoint is saved in {out}; `tensorfields eval {out}` scores it"
    metrics = {
        **{key: result[key] for key in ("psnr", "ssim", "num_views", "held_out_views", "held_out_poses", "resolution", "appearance")},
        "iterations": trainer.state.iteration,
        "train_seconds": round(trainer.state.train_seconds, 2),
        "eval_seconds": result["eval_seconds"],
        "num_parameters": trainer.field.num_parameters(),
        "nbytes": trainer.field.nbytes(),
        **_rank_metrics(trainer),
    }
    with writing(out / "metrics.json", kept):
        write_json(out / "metrics.json", metrics)
    log(f"held-out PSNR {metrics['psnr']:.2f} dB, SSIM {metrics['ssim']:.4f} on {metrics['num_views']} views; run in {out}")
    return metrics


def _rank_metrics(trainer: Trainer) -> dict[str, Any]:
    """`ranks` of a rank-ordered field, and whether it was trained slimmable (TRaIn)."""
    if not isinstance(trainer.field, Slimmable):
        return {}
    return {"ranks": trainer.field.ranks, "slimmable": trainer.config.slimmable}


def _describe(status: dict[str, Any]) -> str:
    if status["native"]:
        return "C++ and CUDA" if status["cuda"] else "C++ (CPU)"
    if status["forced_reference"]:
        return "off (TENSORFIELDS_REFERENCE set), pure-torch reference"
    return f"unavailable, pure-torch reference ({status['error']})"
