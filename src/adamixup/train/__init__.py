"""Training: config, the loop, schedules, checkpoints, comparisons, distributed glue."""
from .base import BaseTrainer, RunInterrupted, TrainingError, read_metrics
from .checkpoint import CheckpointError
from .compare import compare, table_markdown
from .config import ConfigError, TrainConfig, build_config, list_recipes
from .loop import ClassificationTrainer, resume, train

__all__ = ["BaseTrainer", "CheckpointError", "ClassificationTrainer", "ConfigError", "RunInterrupted", "TrainConfig", "TrainingError", "build_config",
           "compare", "list_recipes", "read_metrics", "resume", "table_markdown", "train"]
