"""Checkpoints written atomically (temporary name, then rename) and read with weights_only=True.

Reading one never dumps a traceback: a missing, truncated, foreign or crafted file is a
:class:`CheckpointError` that says which, and names an intact alternative (``best.pt``) when there
is one.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch


class TrainingError(RuntimeError):
    """A run that cannot go on (non-finite loss, nothing to resume); the message says what to do."""


class CheckpointError(TrainingError):
    """A checkpoint file that is missing or cannot be used; the message names the file and why."""


def save_atomic(obj: Dict[str, Any], path: Path) -> None:
    """Write ``obj`` to ``path`` so that a crash leaves either the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _why_unreadable(err: BaseException, path: Path) -> str:
    """What is wrong with a file ``torch.load(weights_only=True)`` refused, in a few words."""
    text = " ".join(str(err).split())
    if isinstance(err, pickle.UnpicklingError) and "weights only" in text.lower():
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return (f"it holds code ({found.group(1)}), which a checkpoint never does; it was refused "
                    "and nothing in it ran")
        return "it is not a file torch.save wrote (a plain pickle or a corrupt file); it was refused and nothing in it ran"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if not head:
        return "it is empty (0 bytes)"
    if head == b"PK\x03\x04" or isinstance(err, (EOFError, zipfile.BadZipFile)):  # torch.save's zip archive, cut short
        return "it is truncated or corrupt"
    return f"it is not a file torch.save wrote, or it is corrupt ({type(err).__name__}: {text[:120]})"


def read_checkpoint(path: Path, map_location="cpu", required: Sequence[str] = ("model",)) -> Dict[str, Any]:
    """Load ``path`` with ``weights_only=True`` and check that it is a dict holding ``required``;
    raises :class:`CheckpointError` with one sentence otherwise (no alternative offered)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols: the error says enough
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001  a torn, foreign or crafted file: say which
        raise CheckpointError(f"checkpoint {path} cannot be read: {_why_unreadable(err, path)}") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} is not an adamixup checkpoint (it holds a {type(ckpt).__name__}, "
                              "not a dict of model, optimizer and RNG states)")
    missing = [k for k in required if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} is not an adamixup checkpoint of this kind "
                              f"(no {', '.join(repr(k) for k in missing)} entry)")
    return ckpt


def load_checkpoint(path: Path, map_location="cpu", required: Sequence[str] = ("model",),
                    alternative: Optional[str] = None) -> Dict[str, Any]:
    """:func:`read_checkpoint`, and when it fails, name an intact sibling (``best.pt`` for
    ``last.pt`` and the other way round) with its epoch; ``alternative`` says how to use it
    (``{path}`` stands for the sibling, e.g. "evaluate it with --checkpoint best")."""
    path = Path(path)
    try:
        return read_checkpoint(path, map_location, required)
    except CheckpointError as err:
        other = path.with_name({"last.pt": "best.pt", "best.pt": "last.pt"}.get(path.name, ""))
        note = ""
        if other != path and other.name and other.is_file():
            try:
                epoch = read_checkpoint(other, "cpu", required).get("epoch", "?")
                hint = (alternative or "use it instead").format(path=other, name=other.stem)
                note = f"; {other} (epoch {epoch}) is intact: {hint}"
            except CheckpointError:
                note = f"; {other} cannot be used either"
        raise CheckpointError(f"{err}{note}") from None


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
