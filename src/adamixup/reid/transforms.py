"""Image transforms of the re-ID strong baseline (Luo et al., "Bag of Tricks and a Strong Baseline
for Deep Person Re-identification", CVPR-W 2019), built from torchvision's ``transforms.v2``.

Training: resize, horizontal flip (probability ``flip_p``), pad ``padding`` pixels and crop back at a
random place, to a float tensor, ImageNet normalization, random erasing (Zhong et al., AAAI 2020;
probability ``erasing_p``, area 2–40 % of the image, aspect ratio 0.3–3.33). Test: resize and
normalize. The strong baseline's values (256×128, flip 0.5, pad 10, erasing 0.5) live in its recipes
(``recipes/reid/bot*.yaml``); the defaults here switch every augmentation off.

These run per image in DataLoader workers (PIL in, ``(3, H, W)`` float tensor out): re-ID images
come in assorted sizes, so they must be decoded and resized one by one anyway.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_train_transform(
    size: Tuple[int, int] = (256, 128),
    flip_p: float = 0.0,
    padding: int = 0,
    erasing_p: float = 0.0,
    erasing_scale: Tuple[float, float] = (0.02, 0.4),
    erasing_ratio: Tuple[float, float] = (0.3, 3.33),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """The training transform. ``size`` is (height, width). ``padding`` 0 skips pad-and-crop,
    ``erasing_p`` 0 skips random erasing.

    Erased pixels get the value 0 after normalization, i.e. the ImageNet mean colour. The strong
    baseline's released code differs here: it erases *after* normalizing but fills the mean's raw
    values (0.485, 0.456, 0.406) as normalized values, a light grey of about (0.60, 0.56, 0.50) in
    pixel terms. torchvision draws the erased box's aspect ratio log-uniformly in ``erasing_ratio``
    and tries 10 times; the released code draws it uniformly (so about three boxes in four are taller
    than wide) and tries up to 100 times.
    """
    steps = [v2.Resize(size, antialias=True), v2.RandomHorizontalFlip(flip_p)]
    if padding > 0:
        steps += [v2.Pad(padding), v2.RandomCrop(size)]
    steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if erasing_p > 0:
        steps.append(v2.RandomErasing(p=erasing_p, scale=erasing_scale, ratio=erasing_ratio, value=0))
    return v2.Compose(steps)


def build_test_transform(
    size: Tuple[int, int] = (256, 128), mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> v2.Compose:
    """The test transform: resize to ``size`` (height, width), to a float tensor, normalize."""
    return v2.Compose(
        [v2.Resize(size, antialias=True), v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    )
