"""Training: config, the loop, schedules, checkpoints, comparisons, distributed glue."""
from .base import BaseTrainer, TrainingError, read_metrics
from .compare import compare, table_markdown
from .config import ConfigError, TrainConfig, build_config, list_recipes
from .loop import ClassificationTrainer, resume, train

__all__ = ["BaseTrainer", "ClassificationTrainer", "ConfigError", "TrainConfig", "TrainingError", "build_config",
           "compare", "list_recipes", "read_metrics", "resume", "table_markdown", "train"]
