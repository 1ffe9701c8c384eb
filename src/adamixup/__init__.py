"""adamixup: AdaMixUp, MixUp and ERM as drop-in PyTorch modules, with a trainer and a re-ID baseline."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("adamixup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["ERM", "MixUp", "AdaMixUp", "MixOutput", "__version__"]


def __getattr__(name: str):
    # the mixers import torch: load them on first use, so that `adamixup --help` stays fast
    if name in ("ERM", "MixUp", "AdaMixUp", "MixOutput"):
        from . import mixing

        return getattr(mixing, name)
    if name in ("mixing", "models", "data", "train", "classify", "reid", "study", "plots", "cli"):  # `import adamixup; adamixup.models...`
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'adamixup' has no attribute {name!r}")
