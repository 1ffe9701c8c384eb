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
