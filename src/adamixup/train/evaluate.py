"""``evaluate``: test error and per-class errors of a saved run."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..data import BatchAugment, load_dataset
from .base import TrainingError, load_run_config, select_device
from .checkpoint import CheckpointError, load_checkpoint
from .config import config_from_dict
from .loop import build_classifier, error_rate, per_class_error, predict


def evaluate_run(run_dir: Path, checkpoint: str = "last", device: str = "auto") -> Dict[str, Any]:
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, config_from_dict)
    ckpt_path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    if not ckpt_path.is_file():
        raise TrainingError(f"{run_dir} has no {checkpoint}.pt checkpoint")
    dev = select_device(device)
    ckpt = load_checkpoint(ckpt_path, "cpu", required=("model", "epoch"), alternative="evaluate it with --checkpoint {name}")
    data = load_dataset(config.dataset, config.data_root, train_fraction=config.train_fraction, seed=config.seed,
                        fold=config.fold, num_folds=config.num_folds)
    model = build_classifier(config, data.in_channels, data.num_classes)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {ckpt_path} does not fit the run's model "
                              f"({type(err).__name__}: {' '.join(str(err).split())[:200]})") from None
    model.to(dev)
    augment = BatchAugment(data.mean, data.std).to(dev)
    pred = predict(model, data.test_x, augment, config.eval_batch_size, dev)
    return {
        "run_dir": str(run_dir), "checkpoint": checkpoint, "epoch": ckpt["epoch"], "dataset": config.dataset,
        "test_samples": len(data.test_y), "test_error": error_rate(pred, data.test_y),
        "per_class_error": dict(zip(data.classes, per_class_error(pred, data.test_y, data.num_classes))),
    }
