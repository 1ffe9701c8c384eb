"""Every re-ID data set by name: ``read_reid_dataset(name, root, **kwargs)``."""
from __future__ import annotations

from typing import Callable, Dict

from ..data.base import DataError
from .cuhk01 import read_cuhk01
from .data import ReIDData, read_dukemtmc_reid, read_generic, read_market1501, read_msmt17

READERS: Dict[str, Callable[..., ReIDData]] = {
    "market1501": read_market1501,
    "dukemtmcreid": read_dukemtmc_reid,
    "msmt17": read_msmt17,
    "cuhk01": read_cuhk01,
    "generic": read_generic,
}


def read_reid_dataset(name: str, root: str, **kwargs) -> ReIDData:
    """Read a dataset by name: one of ``READERS`` (market1501, dukemtmcreid, msmt17, cuhk01,
    generic); ``kwargs`` go to its reader (e.g. ``split=3, num_test=100, shot="multi"`` for cuhk01)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in READERS:
        raise DataError(f"unknown re-ID dataset {name!r}; choose one of {', '.join(READERS)}")
    return READERS[key](root, **kwargs)
