"""adamixup.data.BatchAugment: batched pad-and-crop, flip and normalization."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from adamixup.data import BatchAugment, channel_stats


def _batch(b=16, c=3, h=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, h), generator=g, dtype=torch.uint8)


def _reference(x, mean, std, pad, dy, dx, flipped):
    """The augmentation one sample at a time, the slow obvious way."""
    out = []
    for i in range(len(x)):
        img = F.pad(x[i].float(), (pad, pad, pad, pad))
        img = img[:, dy[i]: dy[i] + x.shape[2], dx[i]: dx[i] + x.shape[3]]
        if flipped[i]:
            img = img.flip(-1)
        out.append(img)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (torch.stack(out) / 255 - m) / s


def test_shapes_dtype_and_normalize_statistics():
    x = _batch(64)
    mean, std = channel_stats(x)
    aug = BatchAugment(mean, std, pad=2, flip=True)
    out = aug(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.float32
    z = aug.normalize(x)
    assert z.shape == x.shape and z.dtype == torch.float32
    assert torch.allclose(z.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(z, (x.float() / 255 - m) / s)


def test_no_pad_no_flip_is_just_normalize():
    x = _batch()
    aug = BatchAugment([0.5] * 3, [0.25] * 3)
    assert torch.equal(aug(x, torch.Generator().manual_seed(0)), aug.normalize(x))
    assert aug.normalize(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)).eq(2.0).all()


def test_crop_offsets_stay_within_the_pad_and_cover_it():
    aug = BatchAugment([0.0], [1.0], pad=3)
    dy, dx, flipped = aug.sample(4000, "cpu", torch.Generator().manual_seed(0))
    assert dy.dtype == torch.int64 and dy.shape == (4000,)
    for offsets in (dy, dx):
        assert offsets.min() == 0 and offsets.max() == 6  # shifts of -3..3, every one used
        assert torch.bincount(offsets).min() > 400
    assert not flipped.any()


def test_apply_matches_the_per_sample_reference():
    x = _batch(32)
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]
    for pad, flip in ((0, True), (2, False), (3, True)):
        aug = BatchAugment(mean, std, pad=pad, flip=flip)
        dy, dx, flipped = aug.sample(len(x), "cpu", torch.Generator().manual_seed(pad))
        expected = _reference(x, mean, std, pad, dy, dx, flipped)
        assert torch.allclose(aug.apply(x, dy, dx, flipped), expected, atol=1e-6)
        # forward draws the same parameters from the same generator state
        assert torch.equal(aug(x, torch.Generator().manual_seed(pad)), aug.apply(x, dy, dx, flipped))


def test_padding_is_black_and_the_crop_shifts_the_image():
    x = torch.full((1, 1, 6, 6), 255, dtype=torch.uint8)
    aug = BatchAugment([0.0], [1.0], pad=2)
    corner = aug.apply(x, torch.tensor([0]), torch.tensor([0]), torch.tensor([False]))[0, 0]
    assert (corner[:2] == 0).all() and (corner[:, :2] == 0).all() and (corner[2:, 2:] == 1).all()
    centre = aug.apply(x, torch.tensor([2]), torch.tensor([2]), torch.tensor([False]))
    assert (centre == 1).all()
    ramp = torch.arange(36, dtype=torch.uint8).view(1, 1, 6, 6)
    shifted = aug.apply(ramp, torch.tensor([3]), torch.tensor([1]), torch.tensor([False]))[0, 0] * 255
    # offset (3, 1) in the padded image = source pixel (r + 1, c - 1)
    assert torch.allclose(shifted[:5, 1:], ramp[0, 0, 1:, :5].float())


def test_flip_is_a_true_mirror_for_about_half_the_batch():
    x = _batch(200, c=2, h=5)
    aug = BatchAugment([0.0, 0.0], [1.0, 1.0], flip=True)
    out = aug(x, torch.Generator().manual_seed(3))
    plain = aug.normalize(x)
    mirrored = plain.flip(-1)
    is_plain = (out == plain).flatten(1).all(1)
    is_mirror = (out == mirrored).flatten(1).all(1)
    assert (is_plain | is_mirror).all()
    assert 70 < int((is_mirror & ~is_plain).sum()) < 130


def test_same_seed_same_output_other_seed_other_output():
    x = _batch(64)
    aug = BatchAugment([0.5] * 3, [0.5] * 3, pad=4, flip=True)
    a = aug(x, torch.Generator().manual_seed(11))
    b = aug(x, torch.Generator().manual_seed(11))
    c = aug(x, torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d = aug(x)  # no generator: torch's default one
    torch.manual_seed(5)
    assert torch.equal(d, aug(x))


def test_bad_inputs_are_refused():
    aug = BatchAugment([0.5] * 3, [0.5] * 3, pad=1)
    with pytest.raises(ValueError, match="uint8"):
        aug(_batch().float())
    with pytest.raises(ValueError, match="3 channels"):
        aug(_batch(c=1))
    with pytest.raises(ValueError, match="std must be positive"):
        BatchAugment([0.5], [0.0])
    with pytest.raises(ValueError, match="one value per channel"):
        BatchAugment([0.5, 0.5], [0.5])
    with pytest.raises(ValueError, match="pad"):
        BatchAugment([0.5], [0.5], pad=-1)


def test_constants_follow_the_module_but_stay_out_of_checkpoints():
    aug = BatchAugment([0.1, 0.2], [0.3, 0.4], pad=2, flip=True)
    assert aug.state_dict() == {}
    assert aug.mean.shape == (1, 2, 1, 1) and torch.allclose(aug.std.flatten(), torch.tensor([0.3, 0.4]))
    assert "pad=2" in repr(aug)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("generator_device", ["cpu", "cuda"])
def test_cuda_batch_with_cpu_or_cuda_generator(generator_device):
    x = _batch(64)
    aug = BatchAugment([0.5] * 3, [0.5] * 3, pad=4, flip=True)
    out = aug.cuda()(x.cuda(), torch.Generator(generator_device).manual_seed(0))
    assert out.device.type == "cuda"
    dy, dx, flipped = aug.sample(len(x), "cpu", torch.Generator(generator_device).manual_seed(0))
    expected = _reference(x, [0.5] * 3, [0.5] * 3, 4, dy, dx, flipped)
    assert torch.allclose(out.cpu(), expected, atol=1e-6)
