"""Person re-identification, all of it: data sets and the PK sampler, the objective (ID + triplet +
center), the task (:mod:`adamixup.reid.task`: ``train``, ``resume``, ``evaluate``, ``load``, ``export``,
the verbs of :mod:`adamixup.classify` too), retrieval metrics, distances, k-reciprocal re-ranking,
features and pictures. The network is :class:`adamixup.models.ReIDResNet50`; training runs on
:mod:`adamixup.train`'s engine.

Importing this package loads the data, metric and picture modules; the task (which imports
torchvision's models and the engine) loads with ``from adamixup.reid import task``."""
from .data import ReIDData, ReIDImageDataset, ReIDSplit
from .datasets import READERS, read_reid_dataset
from .distance import compute_distance
from .features import FeatureSet, export_features, extract_features, load_features
from .losses import CenterLoss, CrossEntropyLabelSmooth, TripletLoss, euclidean_dist, hard_example_mining
from .metrics import evaluate_features, evaluate_rank
from .plots import plot_cmc, plot_ranked_lists, reid_curves
from .rerank import re_ranking
from .sampler import PKBatchSampler
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform, build_train_transform

__all__ = [
    "ReIDData", "ReIDSplit", "ReIDImageDataset", "READERS", "read_reid_dataset", "PKBatchSampler",
    "CrossEntropyLabelSmooth", "TripletLoss", "CenterLoss", "euclidean_dist", "hard_example_mining",
    "evaluate_rank", "compute_distance", "evaluate_features", "re_ranking",
    "build_train_transform", "build_test_transform", "IMAGENET_MEAN", "IMAGENET_STD",
    "FeatureSet", "export_features", "load_features", "extract_features", "plot_cmc", "plot_ranked_lists", "reid_curves",
]
