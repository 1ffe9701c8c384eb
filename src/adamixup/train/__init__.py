"""Training: config, the loop, schedules, checkpoints, comparisons, distributed glue."""
from .compare import compare, table_markdown
from .config import ConfigError, TrainConfig, build_config, list_recipes
from .loop import Trainer, TrainingError, read_metrics, resume, train

__all__ = ["ConfigError", "TrainConfig", "Trainer", "TrainingError", "build_config", "compare",
           "list_recipes", "read_metrics", "resume", "table_markdown", "train"]
