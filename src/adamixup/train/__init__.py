"""Training: the engine (one epoch loop, one step over a task's objective), the run folder, the
config, schedules, checkpoints, distributed glue, and the classification task."""
from .checkpoint import CheckpointError, TrainingError
from .classification import ClassificationTask, evaluate_run, load_trained, resume, train
from .config import ConfigError, RunConfig, TrainConfig, build_config, config_from_dict, list_recipes
from .engine import RunInterrupted, StepOutput, Task, Trainer
from .rundir import RunDir, read_metrics

__all__ = ["CheckpointError", "ClassificationTask", "ConfigError", "RunConfig", "RunDir", "RunInterrupted", "StepOutput",
           "Task", "TrainConfig", "Trainer", "TrainingError", "build_config", "config_from_dict", "evaluate_run",
           "list_recipes", "load_trained", "read_metrics", "resume", "train"]
