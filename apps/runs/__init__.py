"""Run folders: checkpoints (`checkpoint.safetensors`) and the records beside them."""

from .checkpoint import CHECKPOINT_NAME, FORMAT_VERSION, Checkpoint, CheckpointError, checkpoint_nbytes, load_checkpoint, save_checkpoint
from .records import load_run_config, scene_info, train_cameras, write_json

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_nbytes",
    "load_checkpoint",
    "save_checkpoint",
    "load_run_config",
    "scene_info",
    "train_cameras",
    "write_json",
]
