"""Person re-identification, all of it: data sets and the PK sampler, the objective (ID + triplet +
center), the trainer, retrieval metrics, distances, k-reciprocal re-ranking, features and pictures.
The network is :class:`adamixup.models.ReIDResNet50`; training runs on :mod:`adamixup.train`'s engine.

Submodules load on first use (``adamixup.reid.trainer`` imports torchvision and the engine)."""
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
