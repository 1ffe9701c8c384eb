"""Shared timing of training steps for the speed benchmarks (step_time.py, gpu_throughput.py).

A step = mixer call + backward + optimizer update on fixed random tensors. Methods run round-robin
(one timed block each, repeated) so that drifts of the machine hit them all alike; each method's
figure is the median over its blocks.
"""
from __future__ import annotations

import contextlib
import platform
import statistics
import time
from typing import Callable, Dict

import torch
from torch import nn

from adamixup import ERM, AdaMixUp, MixUp

METHODS: Dict[str, Callable[[nn.Module], nn.Module]] = {
    "ERM": lambda m: ERM(),
    "MixUp": lambda m: MixUp(),
    "AdaMixUp (defaults: π = classifier copy, light φ body)": lambda m: AdaMixUp(m),
    "AdaMixUp.paper (the authors' released step: φ on a second backbone pass)": lambda m: AdaMixUp.paper(m),
    "AdaMixUp (φ on the shared features, one pass; the package's former paper settings)": lambda m: AdaMixUp(
        m, mixed_loss="ce", min_width=0.0, intrusion_backbone="shared"),
    "AdaMixUp (light π, light φ body)": lambda m: AdaMixUp(m, policy="light"),
    "AdaMixUp (φ on its own classifier copy)": lambda m: AdaMixUp(m, intrusion_backbone="own"),
    "AdaMixUp (φ on the fixed backbone)": lambda m: AdaMixUp(m, intrusion_backbone="fixed"),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_methods(build_model: Callable[[], nn.Module], methods: Dict[str, Callable[[nn.Module], nn.Module]],
                 x: torch.Tensor, y: torch.Tensor, steps: int, repeats: int, precision: str = "fp32",
                 channels_last: bool = False) -> Dict[str, float]:
    """Median seconds per training step of each method, all on the same batch ``(x, y)``."""
    device = x.device
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    runs = {}
    for label, make in methods.items():
        torch.manual_seed(0)
        model = build_model().to(device, memory_format=fmt)
        mixer = make(model).to(device, memory_format=fmt)
        opt = torch.optim.SGD([*model.parameters(), *mixer.parameters()], lr=0.01, momentum=0.9)
        scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        runs[label] = (model, mixer, opt, scaler)

    def block(label: str, n: int) -> float:
        model, mixer, opt, scaler = runs[label]
        ctx = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n):
            with ctx:
                out = mixer(model, x, y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(out.loss).backward()
            scaler.step(opt)
            scaler.update()
        sync(device)
        return (time.perf_counter() - t0) / n

    for label in methods:  # warm-up: allocator, cuDNN autotuning, first-call overheads
        block(label, 2)
    times = {label: [] for label in methods}
    for _ in range(repeats):
        for label in methods:
            times[label].append(block(label, steps))
    return {label: statistics.median(t) for label, t in times.items()}
