"""Image classification, the task: its config and recipes, the step's objective, evaluation and pictures.

The same verbs as :mod:`adamixup.reid`: ``train(config)``, ``resume(run_dir)``, ``evaluate(run_dir)``,
``load(run_dir)``; configs come from ``build_config(recipe, overrides)``. Training runs on
:mod:`adamixup.train`'s engine.
"""
from .config import ClassificationConfig, TrainConfig, build_config, config_from_dict, list_recipes
from .task import ClassificationObjective, ClassificationTask, evaluate, load, resume, train

__all__ = ["ClassificationConfig", "ClassificationObjective", "ClassificationTask", "TrainConfig", "build_config",
           "config_from_dict", "evaluate", "list_recipes", "load", "resume", "train"]
