"""Person re-identification: the strong baseline's losses, retrieval metrics, k-reciprocal
re-ranking, transforms, feature files and pictures. Datasets and the PK sampler live in
``adamixup.data.reid`` and ``adamixup.data.pk_sampler``; the network in
``adamixup.models.reid_resnet``."""
from .features import FeatureSet, export_features, extract_features, load_features
from .losses import CenterLoss, CrossEntropyLabelSmooth, TripletLoss, euclidean_dist, hard_example_mining
from .metrics import compute_distance, evaluate_features, evaluate_rank
from .plots import plot_cmc, plot_ranked_lists
from .rerank import re_ranking
from .transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform, build_train_transform

__all__ = [
    "CrossEntropyLabelSmooth", "TripletLoss", "CenterLoss", "euclidean_dist", "hard_example_mining",
    "evaluate_rank", "compute_distance", "evaluate_features", "re_ranking",
    "build_train_transform", "build_test_transform", "IMAGENET_MEAN", "IMAGENET_STD",
    "FeatureSet", "export_features", "load_features", "extract_features", "plot_cmc", "plot_ranked_lists",
]
