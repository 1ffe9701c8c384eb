"""Checkpoints written atomically (temporary name, then rename) and read with weights_only=True."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import torch


def save_atomic(obj: Dict[str, Any], path: Path) -> None:
    """Write ``obj`` to ``path`` so that a crash leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, map_location="cpu") -> Dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # a torn or foreign file: say which one
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0]})") from None


def rng_state(data_generator: torch.Generator) -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "data": data_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any], data_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    data_generator.set_state(state["data"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
