"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def few_threads():
    # The tests use small tensors, where extra threads only add contention (two processes of the
    # distributed tests share the same cores); one or two threads keep every test fast.
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def image_cache_in_tmp(tmp_path_factory, monkeypatch):
    # image-folder caches go to a temporary folder, never into the user's ~/.cache
    monkeypatch.setenv("ADAMIXUP_CACHE", str(tmp_path_factory.getbasetemp() / "adamixup-cache"))
