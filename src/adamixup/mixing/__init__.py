"""Regularizers behind one call: ``out = mixer(model, x, y)``; ``out.loss.backward()``."""
from .adamixup import PAPER_SETTINGS, AdaMixUp, LightPolicyBody, PolicyRegionGenerator
from .base import MixOutput, derangement, half_mix, mix_pair, mix_targets, one_hot, recursive_mix, soft_cross_entropy
from .controls import LayoutMixUp
from .erm import ERM
from .mixup import MixUp
from .registry import METHODS, Method, build_mixer, get_method


__all__ = [
    "ERM", "MixUp", "AdaMixUp", "LayoutMixUp", "PAPER_SETTINGS", "MixOutput", "PolicyRegionGenerator",
    "LightPolicyBody", "METHODS", "Method", "build_mixer", "get_method", "derangement", "half_mix", "mix_pair",
    "mix_targets", "one_hot", "recursive_mix", "soft_cross_entropy",
]
