"""Following a run while it trains: `tensorfields view RUN --follow` and `train ... --view`.

`RunFollower` polls the run folder: a new checkpoint (its inode, size or mtime changed) is loaded
(checkpoints are renamed into place, so a load sees a whole file; one that fails anyway is tried
once more, then the current model stays) and scored on `HELD_OUT_VIEWS` held-out views at
`HELD_OUT_PIXELS` pixels each; `progress.jsonl` (`runs.progress`) gives the loss and batch-PSNR
curves. All of it runs in the viewer and only when a page asks (`gr.Timer` ticks only while one
is open), so a run that nobody looks at pays nothing but its checkpoint writes.

`add_follow_panel` adds the panel to the viewer (`build_viewer(..., follow=True)`): the
iteration, the curves (`gr.LinePlot`) and a status line; each tick that finds a new checkpoint
puts its model in the viewer and re-renders the current camera. `LiveViewer` serves that viewer
from inside a training run (`train --view`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from data import Scene, SceneError
from render import Model

from ..evaluate import at_most_pixels, evaluate_views, evenly_spaced
from ..runs import CHECKPOINT_NAME, PROGRESS_NAME, Checkpoint, CheckpointError, ProgressReader, load_checkpoint
from .app import ViewerState, build_viewer, launch_viewer

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FOLLOW_SECONDS",
    "HELD_OUT_VIEWS",
    "HELD_OUT_PIXELS",
    "Poll",
    "RunFollower",
    "add_follow_panel",
    "follow_tick",
    "has_checkpoint",
    "wait_for_checkpoint",
    "LiveViewer",
]

#: seconds between the panel's polls of the run folder (while a page is open)
FOLLOW_SECONDS = 2.0
#: held-out views each new checkpoint is scored on, and the most pixels of each
HELD_OUT_VIEWS = 2
HELD_OUT_PIXELS = 64 * 64
#: seconds before a failed checkpoint load is tried again
RETRY_SECONDS = 0.2
#: the most points of a curve sent to the page (longer logs are thinned evenly)
MAX_CURVE_POINTS = 500


@dataclass(frozen=True)
class Poll:
    """What a `RunFollower.poll` found: the model of a newly loaded checkpoint (None when the
    shown one stays) and whether the curves changed."""

    model: Model | None
    curves: bool


class RunFollower:
    """The newest checkpoint of `run_dir`, its held-out PSNR and the run's progress log.

    scene: loads the run's scene (for the held-out views; may raise `SceneError`), called once,
    at the first checkpoint. After each `poll`: `model` and `iteration` of the checkpoint shown
    (None before the first), `held_out` [(iteration, PSNR dB)] of the checkpoints seen,
    `progress` the log read so far, `status` one line on what is shown and what went wrong."""

    def __init__(
        self,
        run_dir: str | Path,
        device: torch.device | str,
        scene: Callable[[], Scene],
        views: int = HELD_OUT_VIEWS,
        pixels: int = HELD_OUT_PIXELS,
    ) -> None:
        self.run_dir, self.device = Path(run_dir), device
        self.progress = ProgressReader(self.run_dir / PROGRESS_NAME)
        self.model: Model | None = None
        self.iteration: int | None = None
        self.held_out: list[tuple[int, float]] = []
        self._load_scene, self._views, self._pixels = scene, views, pixels
        self._held_out_scene: tuple[Scene, torch.Tensor] | None = None
        self._signature: tuple[int, int, int] | None = None
        self._checkpoint_note = f"waiting for the first checkpoint in {self.run_dir}"
        self._score_note = ""

    # --- polling ------------------------------------------------------------------------
    def poll(self) -> Poll:
        """Look at the run folder once: load a new checkpoint, read new progress lines."""
        model = self._check_checkpoint()
        curves = self.progress.update()
        return Poll(model, curves or model is not None)

    @property
    def status(self) -> str:
        """The checkpoint's state, then the held-out score's, then skipped progress lines."""
        notes = [self._checkpoint_note, self._score_note]
        if self.progress.damaged:
            notes.append(f"skipped {self.progress.damaged} damaged line(s) of {PROGRESS_NAME}")
        return "; ".join(note for note in notes if note)

    def _check_checkpoint(self) -> Model | None:
        """The model of the checkpoint file if it is new and loads, else None (the status says why)."""
        path = self.run_dir / CHECKPOINT_NAME
        signature = _signature(path)
        if signature is None:
            if self.model is not None:
                self._checkpoint_note = f"the checkpoint in {self.run_dir} was deleted; still showing the last model loaded ({self._shown()})"
            return None
        if signature == self._signature:
            return None
        self._signature = signature
        try:
            checkpoint = self._load(path)
        except CheckpointError as error:
            keeping = f"still showing {self._shown()}" if self.model is not None else "waiting for the next checkpoint"
            self._checkpoint_note = f"could not load the new checkpoint ({error}); {keeping}"
            return None
        self.model, self.iteration = checkpoint.model.eval(), _iteration(checkpoint)
        self._score(self.model)
        self._checkpoint_note = f"following {self.run_dir}: {self._shown()} loaded at {time.strftime('%H:%M:%S')}"
        return self.model

    def _load(self, path: Path) -> Checkpoint:
        """`load_checkpoint`, tried once more after `RETRY_SECONDS` when it fails (a save racing it)."""
        try:
            return load_checkpoint(path, self.device)
        except CheckpointError:
            time.sleep(RETRY_SECONDS)
            return load_checkpoint(path, self.device)

    def _shown(self) -> str:
        return "the checkpoint of an unknown iteration" if self.iteration is None else f"iteration {self.iteration}"

    # --- held-out PSNR ------------------------------------------------------------------
    def _score(self, model: Model) -> None:
        """Add `model`'s held-out PSNR to `held_out` (points of later iterations, from a run
        that was resumed earlier or replaced, are dropped)."""
        try:
            scene, views = self._scored_views()
        except (SceneError, KeyError) as error:
            self._score_note = f"held-out PSNR unavailable ({' '.join(str(error).split())})"
            return
        result = evaluate_views(model, scene, views, with_ssim=False)
        width, height = result["resolution"]
        self._score_note = f"held-out PSNR {result['psnr']:.2f} dB on {result['num_views']} view(s) at {width}x{height}"
        if self.iteration is not None:
            self.held_out = [point for point in self.held_out if point[0] < self.iteration] + [(self.iteration, result["psnr"])]

    def _scored_views(self) -> tuple[Scene, torch.Tensor]:
        """The scene with its `views` evenly spread held-out images at `pixels` each, and their indices `[K]`."""
        if self._held_out_scene is None:
            scene = self._load_scene()
            views = evenly_spaced(scene.split("test"), self._views)
            self._held_out_scene = at_most_pixels(scene, views, self._pixels)[0], views
        return self._held_out_scene

    # --- what the panel shows -----------------------------------------------------------
    def iteration_text(self) -> str:
        """Markdown: the iteration shown, where training is (iteration, seconds, loss), the last held-out PSNR."""
        lines = ["**iteration** none yet" if self.model is None else f"**iteration** {self.iteration if self.iteration is not None else '?'} (shown)"]
        if self.progress.entries:
            last = self.progress.entries[-1]
            lines.append(f"**training** iteration {last.iteration}, {last.seconds:.0f} s, loss {last.loss:.4f}")
        if self.held_out:
            iteration, score = self.held_out[-1]
            lines.append(f"**held-out PSNR** {score:.2f} dB at iteration {iteration}")
        return "  \n".join(lines)

    def loss_frame(self) -> pd.DataFrame:
        """The loss curve: columns iteration, loss."""
        import pandas as pd

        entries = _thin(self.progress.entries)
        return pd.DataFrame({"iteration": [e.iteration for e in entries], "loss": [e.loss for e in entries]})

    def psnr_frame(self) -> pd.DataFrame:
        """The PSNR curves: columns iteration, psnr (dB), series ("training batch", "held-out")."""
        import pandas as pd

        batch = [(e.iteration, e.psnr, "training batch") for e in _thin(self.progress.entries)]
        held_out = [(iteration, score, "held-out") for iteration, score in _thin(self.held_out)]
        return pd.DataFrame(batch + held_out, columns=["iteration", "psnr", "series"])


def _signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime in ns) of a file, None when it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _iteration(checkpoint: Checkpoint) -> int | None:
    """The training iteration a checkpoint was saved at; None when it does not say (a compact one)."""
    iteration = checkpoint.train_state.get("iteration")
    return iteration if isinstance(iteration, int) and not isinstance(iteration, bool) else None


def _thin(points: Sequence[Any], most: int = MAX_CURVE_POINTS) -> list[Any]:
    """At most `most` of `points`, evenly spread, the last one kept."""
    if len(points) <= most:
        return list(points)
    step = -(-len(points) // most)
    return [*points[: -1 : step], points[-1]]


# --- the panel ---------------------------------------------------------------------------
def add_follow_panel(state: ViewerState, controls: Sequence[Any], image: Any, info: Any) -> RunFollower:
    """Add the follow panel to the `gr.Blocks` being built (call inside it): the iteration, the
    loss and PSNR plots and the status line, polled by a `gr.Timer` every `FOLLOW_SECONDS`. A new
    checkpoint replaces `state.model` and re-renders the camera (`state.render(*controls)` into
    `image`, `info`). The newest checkpoint is loaded and scored once now."""
    import gradio as gr

    follower = RunFollower(state.run_dir, state.model.device, state.scene)
    newer = follower.poll().model
    if newer is not None:
        state.model = newer
    with gr.Accordion("training progress (following the run)", open=True):
        iteration = gr.Markdown(follower.iteration_text(), elem_id="follow-iteration")
        with gr.Row():
            loss = gr.LinePlot(follower.loss_frame(), x="iteration", y="loss", title="training loss", elem_id="follow-loss")
            psnr = gr.LinePlot(follower.psnr_frame(), x="iteration", y="psnr", color="series", title="PSNR (dB)", elem_id="follow-psnr")
        status = gr.Markdown(follower.status, elem_id="follow-status")
    timer = gr.Timer(FOLLOW_SECONDS)
    outputs = [image, info, iteration, loss, psnr, status]
    timer.tick(partial(follow_tick, state, follower), inputs=list(controls), outputs=outputs, show_progress="hidden", trigger_mode="once")
    return follower


def follow_tick(state: ViewerState, follower: RunFollower, *controls: Any) -> tuple[Any, ...]:
    """One poll: (frame, info) re-rendered when the model changed, else left as they are; the
    iteration text; the two curves when they changed; the status line."""
    import gradio as gr

    poll = follower.poll()
    frame: tuple[Any, Any] = (gr.skip(), gr.skip())
    if poll.model is not None:
        state.model = poll.model
        frame = state.render(*controls)
    curves = (follower.loss_frame(), follower.psnr_frame()) if poll.curves else (gr.skip(), gr.skip())
    return (*frame, follower.iteration_text(), *curves, follower.status)


# --- serving a run that trains -----------------------------------------------------------
def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run folder holds what the viewer opens (a checkpoint and its config.json)."""
    return all((Path(run_dir) / name).is_file() for name in (CHECKPOINT_NAME, "config.json"))


def wait_for_checkpoint(run_dir: str | Path, log: Callable[[str], None] = print, every: float = 1.0) -> None:
    """Return once `run_dir` holds a checkpoint (`has_checkpoint`), saying first that it waits."""
    if has_checkpoint(run_dir):
        return
    log(f"{run_dir}: waiting for the first checkpoint (Ctrl-C to stop)")
    while not has_checkpoint(run_dir):
        time.sleep(every)


class LiveViewer:
    """`train --view`: the viewer of the run in follow mode, served from this process (Gradio's
    threads) from the first checkpoint on. `on_step` is `train_run`'s hook (it launches the
    viewer once the checkpoint exists); `serve_until_interrupted` after training keeps it up
    until Ctrl-C; `close` stops it."""

    def __init__(self, run_dir: str | Path, host: str, port: int | None, device: str | None, log: Callable[[str], None] = print) -> None:
        self.run_dir, self.host, self.port, self.device, self.log = Path(run_dir), host, port, device, log
        self.demo: Any = None
        self.url: str | None = None

    def on_step(self, _trainer: Any) -> None:
        if self.demo is None and has_checkpoint(self.run_dir):
            self.launch()

    def launch(self) -> None:
        """Build the follow-mode viewer and serve it without blocking; logs its address."""
        demo = build_viewer(self.run_dir, self.device, follow=True)
        _, self.url, _ = launch_viewer(demo, self.host, self.port, prevent_thread_lock=True, quiet=True)
        self.demo = demo
        self.log(f"viewer: {self.url} (the newest checkpoint, re-rendered while the page is open)")

    def serve_until_interrupted(self) -> None:
        """Keep serving after training (launching first if the run ended before it did) until
        Ctrl-C, which ends it normally: the run is complete."""
        try:
            if self.demo is None:
                self.launch()
            self.log(f"training finished; the viewer keeps serving at {self.url} until Ctrl-C")
            self.demo.block_thread()
        except KeyboardInterrupt:
            pass

    def close(self) -> None:
        if self.demo is not None:
            self.demo.close()
            self.demo = None
