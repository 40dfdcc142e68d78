"""Run folders: checkpoints (`checkpoint.safetensors`), the records beside them (`config.json`,
`metrics.json`, the training log `progress.jsonl`), and the folder's ownership (checked, locked,
one run at a time)."""

from .checkpoint import CHECKPOINT_NAME, FORMAT_VERSION, Checkpoint, CheckpointError, checkpoint_nbytes, load_checkpoint, save_checkpoint
from .folder import RunFolderError, RunLock, RunWriteError, atomic_output, claim_run_folder, remove_temporary_files, writing
from .progress import PROGRESS_NAME, ProgressLog, ProgressReader
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
    "PROGRESS_NAME",
    "ProgressLog",
    "ProgressReader",
    "RunFolderError",
    "RunWriteError",
    "RunLock",
    "claim_run_folder",
    "remove_temporary_files",
    "writing",
    "atomic_output",
]
