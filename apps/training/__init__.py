"""Training: the config and its flags, the loop (`Trainer`), the run around it (`train_run`:
progress bar, checkpoints, final evaluation), the optimizer helpers and the strategies."""

from .config import TrainConfig, add_flags, config_from_args
from .run import RunInterrupted, train_run
from .trainer import LoopState, Trainer, TrainingDiverged

__all__ = ["TrainConfig", "add_flags", "config_from_args", "Trainer", "LoopState", "TrainingDiverged", "train_run", "RunInterrupted"]
