"""torch.distributed glue: process group from torchrun's environment, DDP wrapping, metric reduction.

Under ``torchrun --nproc_per_node N -m adamixup train ...`` every process runs the same trainer;
with one process (no WORLD_SIZE in the environment) each function here is a no-op.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
import torch.distributed as tdist
from torch import Tensor, nn


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def setup() -> None:
    """Join the process group that torchrun describes (nccl on CUDA, gloo on the CPU), once."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", 1)) <= 1:
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        tdist.init_process_group("nccl")
    else:
        tdist.init_process_group("gloo")


def cleanup() -> None:
    if is_distributed():
        tdist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel over the model and the mixer together (π and φ are trained too)."""
    if not is_distributed() or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def _backend_device(device: torch.device) -> torch.device:
    return device if tdist.get_backend() == "nccl" else torch.device("cpu")


def mean_dict(values: Dict[str, float], device: torch.device) -> Dict[str, float]:
    """Average scalar metrics over ranks (each rank ran the same number of steps)."""
    if not is_distributed() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=_backend_device(device))
    tdist.all_reduce(t)
    return dict(zip(keys, (t / world_size()).tolist()))


def max_value(value: float, device: torch.device) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_backend_device(device))
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return t.item()


def gather_cat(t: Tensor) -> Tensor:
    """Concatenate a 1-D CPU tensor of possibly different lengths from every rank."""
    if not is_distributed():
        return t
    parts = [None] * world_size()
    tdist.all_gather_object(parts, t.cpu())
    return torch.cat(parts)


def broadcast_path(path: Path) -> Path:
    """Rank 0's choice of run directory, for every rank."""
    if not is_distributed():
        return path
    box = [str(path)]
    tdist.broadcast_object_list(box, src=0)
    return Path(box[0])


def check_on_rank0(check: Callable[[], None]) -> None:
    """Run ``check`` on rank 0; when it raises, every rank raises the same error, so that no rank is
    left waiting at the next collective for a rank that has stopped."""
    error: Optional[BaseException] = None
    if rank() == 0:
        try:
            check()
        except Exception as err:  # noqa: BLE001  handed to every rank, then raised there
            error = err
    if is_distributed():
        box = [error]
        tdist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise error


def barrier() -> None:
    if is_distributed():
        tdist.barrier()
