"""Batched augmentation on the training device: uint8 images in, normalized float images out.

One gather does the random pad-and-crop and the random horizontal flip of a whole batch at once:
no per-sample Python, so it runs at the speed of one indexing kernel on the GPU.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn


class BatchAugment(nn.Module):
    """Random pad-and-crop, random horizontal flip and normalization of a uint8 batch.

    mean: per-channel mean in [0, 1] pixel scale (e.g. ``Dataset.mean``).
    std:  per-channel standard deviation in [0, 1] pixel scale (e.g. ``Dataset.std``), all > 0.
    pad:  pixels of zero padding on every side before a random crop back to the original size,
          i.e. a shift of each image by ``-pad .. pad`` pixels in each direction (0 = no crop).
    flip: mirror each image left-right with probability 1/2.

    ``forward(x, generator)`` augments and normalizes a training batch; ``normalize(x)`` only
    normalizes (evaluation). Padding is black (pixel value 0), as torchvision's ``RandomCrop``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], pad: int = 0, flip: bool = False):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean_t.numel() != std_t.numel() or mean_t.numel() == 0:
            raise ValueError(f"mean and std need one value per channel, got {mean_t.numel()} and {std_t.numel()}")
        if not bool((std_t > 0).all()):
            raise ValueError(f"std must be positive in every channel, got {std_t.tolist()}")
        if int(pad) != pad or pad < 0:
            raise ValueError(f"pad must be an integer >= 0, got {pad!r}")
        self.pad, self.flip = int(pad), bool(flip)
        # Buffers follow the module to the training device with .to(device); they are constants,
        # not state, so they stay out of checkpoints.
        self.register_buffer("mean", mean_t.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std_t.reshape(1, -1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"channels={self.mean.shape[1]}, pad={self.pad}, flip={self.flip}"

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dtype != torch.uint8 or x.dim() != 4:
            got = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"BatchAugment expects a uint8 batch (B, C, H, W), got {got}")
        if x.shape[1] != self.mean.shape[1]:
            raise ValueError(f"BatchAugment was built for {self.mean.shape[1]} channels, got a batch with {x.shape[1]}")

    def normalize(self, x: Tensor) -> Tensor:
        """uint8 ``(B, C, H, W)`` -> float32 ``(x / 255 - mean) / std``; no randomness."""
        self._check(x)
        mean, std = self.mean.to(x.device), self.std.to(x.device)
        return (x.to(torch.float32).div_(255.0) - mean).div_(std)

    def sample(self, batch: int, device, generator: Optional[torch.Generator] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Draw the random parameters of a batch: ``(dy, dx, flipped)``, each ``(batch,)`` on ``device``.

        dy, dx:  int64 crop offsets in ``0 .. 2*pad`` into the padded image (``pad`` = no shift).
        flipped: bool, which images are mirrored (all False when ``flip`` is off).
        Drawn with ``generator`` on the generator's own device (a CPU generator may serve a CUDA
        batch), then moved to ``device``; with no generator, torch's default one for ``device``.
        """
        gen_device = generator.device if generator is not None else torch.device(device)
        offsets = torch.randint(0, 2 * self.pad + 1, (2, batch), generator=generator, device=gen_device)
        if self.flip:
            flipped = torch.rand(batch, generator=generator, device=gen_device) < 0.5
        else:
            flipped = torch.zeros(batch, dtype=torch.bool, device=gen_device)
        offsets, flipped = offsets.to(device), flipped.to(device)
        return offsets[0], offsets[1], flipped

    def apply(self, x: Tensor, dy: Tensor, dx: Tensor, flipped: Tensor) -> Tensor:
        """Crop ``x`` (uint8 ``(B, C, H, W)``) at offsets ``dy, dx`` of its zero-padded version,
        mirror the ``flipped`` ones, and normalize. Deterministic given the parameters."""
        self._check(x)
        b, c, h, w = x.shape
        if self.pad or self.flip:  # not flipped.any(): that would wait for the GPU
            p = self.pad
            source = nn.functional.pad(x, (p, p, p, p)) if p else x
            rows = dy.view(b, 1) + torch.arange(h, device=x.device)  # (B, H) rows of the padded image
            cols = torch.arange(w, device=x.device).expand(b, w)
            # A mirror reads the columns right to left; folding it into the crop's column index
            # makes crop and flip a single gather.
            cols = torch.where(flipped.view(b, 1), cols.flip(1), cols) + dx.view(b, 1)
            batch_index = torch.arange(b, device=x.device).view(b, 1, 1, 1)
            channel_index = torch.arange(c, device=x.device).view(1, c, 1, 1)
            x = source[batch_index, channel_index, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]
        return self.normalize(x)

    def forward(self, x: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """Augment and normalize a uint8 batch ``(B, C, H, W)`` -> float32 ``(B, C, H, W)``.

        generator: source of randomness (on x's device or on the CPU); None uses torch's default.
        """
        self._check(x)
        dy, dx, flipped = self.sample(x.shape[0], x.device, generator)
        return self.apply(x, dy, dx, flipped)
