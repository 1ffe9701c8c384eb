"""Regularizers behind one call: ``out = mixer(model, x, y)``; ``out.loss.backward()``."""
from .adamixup import PAPER_SETTINGS, AdaMixUp, LightPolicyBody, PolicyRegionGenerator, derangement
from .base import MixOutput, mix_pair, mix_targets, one_hot, recursive_mix, soft_cross_entropy
from .erm import ERM
from .mixup import MixUp

MIXERS = {"erm": ERM, "mixup": MixUp, "adamixup": AdaMixUp}

__all__ = [
    "ERM", "MixUp", "AdaMixUp", "PAPER_SETTINGS", "MixOutput", "PolicyRegionGenerator", "LightPolicyBody", "MIXERS",
    "derangement", "mix_pair", "mix_targets", "one_hot", "recursive_mix", "soft_cross_entropy",
]
