"""The engine both tasks run on: one epoch loop and one step over a task's objective, the run folder,
the shared config keys, schedules, checkpoints and distributed glue. The tasks are
:mod:`adamixup.classify` and :mod:`adamixup.reid`."""
from .checkpoint import CheckpointError, TrainingError
from .config import ConfigError, RunConfig
from .engine import RunInterrupted, StepOutput, Task, Trained, Trainer
from .rundir import RunDir, read_metrics

__all__ = ["CheckpointError", "ConfigError", "RunConfig", "RunDir", "RunInterrupted", "StepOutput", "Task", "Trained",
           "Trainer", "TrainingError", "read_metrics"]
