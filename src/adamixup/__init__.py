"""adamixup: AdaMixUp, MixUp and ERM as drop-in PyTorch modules, with a trainer and a re-ID baseline."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("adamixup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .mixing import ERM, AdaMixUp, MixOutput, MixUp  # noqa: E402

__all__ = ["ERM", "MixUp", "AdaMixUp", "MixOutput", "__version__"]
