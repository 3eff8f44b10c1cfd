"""VIM (spec §2.7) and the exact pruned upsample + argmax (ppseg.vim)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ppseg.semantic.vim import _axis_taps, _torch_uses_generic_kernel, _vim_exact, agreement, vim, vim_exact

from helpers.parity import input_by_rule, load_fixture


def upsample(z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(z, size=size, mode="bilinear", align_corners=False)


def full_argmax(z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return upsample(z, size).argmax(dim=1)


def vim_reference(z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """§2.7 written differently: mask the classes outside the shared label set in the full upsample."""
    present = torch.zeros(z.shape[1], dtype=torch.bool)
    present[z.argmax(1).flatten()] = True
    up = upsample(z, size).masked_fill(~present[None, :, None, None], float("-inf"))
    return up.argmax(1)


def smooth_logits(shape, seed: int, factor: int = 8, scale: float = 3.0) -> torch.Tensor:
    """Spatially smooth logits: a coarse random field bilinearly upsampled to ``shape``."""
    B, C, h, w = shape
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(B, C, max(h // factor, 2), max(w // factor, 2), generator=g) * scale
    return upsample(coarse, (h, w)).contiguous()


# ----------------------------------------------------------------------------- parity fixture


@pytest.mark.parametrize("k", [0, 1])
def test_vim_matches_paddle_fixture(k):
    meta, z = load_fixture("pp_mobileseg_vim_upsample")
    logits = z[f"in{k}_lowres_logits"]
    np.testing.assert_array_equal(logits, input_by_rule(logits.shape, meta["seed"], k))
    size = tuple(int(v) for v in z[f"in{k}_out_hw"])
    expected = torch.from_numpy(z[f"out{k}_label"].astype(np.int64))
    margin = torch.from_numpy(z[f"dbg{k}_vim_margin"])
    lowres = torch.from_numpy(logits)

    labelset = torch.unique(lowres.argmax(1))
    assert labelset.tolist() == meta["vim"][k]["labelset"]  # the label set must match exactly

    got = vim(lowres, size)
    assert got.dtype == torch.int64 and got.shape == expected.shape
    assert set(torch.unique(got).tolist()) <= set(labelset.tolist())
    differ = got != expected
    # disagreement is excusable only where the reference's top-1/top-2 margin is below 1e-5
    assert not bool((differ & (margin >= 1e-5)).any()), int(differ.sum())
    assert int(differ.sum()) <= int((margin < 1e-5).sum())
    # the fixture separates VIM from plain upsampling, and vim_exact is the plain argmax
    plain = full_argmax(lowres, size)
    assert agreement(got, plain) < 0.9
    assert torch.equal(vim_exact(lowres, size), plain)


# ----------------------------------------------------------------------------- vim


def test_vim_is_the_spec_algorithm():
    torch.manual_seed(0)
    for shape, size in [((1, 150, 6, 8), (96, 128)), ((2, 30, 7, 9), (97, 131)), ((3, 12, 5, 5), (80, 80))]:
        z = torch.randn(shape)
        got = vim(z, size)
        assert got.dtype == torch.int64 and got.shape == (shape[0], *size)
        assert torch.equal(got, vim_reference(z, size))


def test_vim_uses_one_label_set_for_the_whole_batch():
    # image 0: class 0 wins on the left, class 2 on the right, class 1 is second at both and wins
    # in between after interpolation, but only if it is in the label set; image 1: class 1 wins
    img0 = torch.tensor([[1.0, 0.0], [0.9, 0.9], [0.0, 1.0]]).view(3, 1, 2)
    img1 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]).view(3, 1, 2)
    z = torch.stack([img0, img1])  # [2, 3, 1, 2]
    size = (1, 8)
    alone = vim(z[:1], size)[0, 0]
    batch = vim(z, size)
    assert 1 not in alone.tolist()  # label set of image 0 alone: {0, 2}
    assert 1 in batch[0, 0].tolist()  # the shared set {0, 1, 2} lets class 1 win in the middle
    assert torch.equal(batch[0], full_argmax(z[:1], size)[0])
    assert torch.equal(batch, vim_reference(z, size))
    assert torch.equal(batch[1], torch.ones(1, 8, dtype=torch.int64))


def test_vim_single_class_and_errors():
    z = torch.randn(2, 1, 3, 4)
    assert torch.equal(vim(z, (9, 10)), torch.zeros(2, 9, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match="B, C, h, w"):
        vim(torch.zeros(3, 4, 5), (8, 8))
    with pytest.raises(ValueError, match="size"):
        vim_exact(torch.zeros(1, 3, 4, 5), (0, 8))


def test_agreement():
    a = torch.tensor([[0, 1, 2, 3]])
    assert agreement(a, a) == 1.0
    assert agreement(a, torch.tensor([[0, 1, 0, 0]])) == 0.5
    with pytest.raises(ValueError):
        agreement(a, a.view(2, 2))


# ----------------------------------------------------------------------------- vim_exact


SIZES = [
    ((7, 9), (97, 131)),    # non-integer ratios, odd sizes
    ((6, 8), (96, 128)),    # scale 16
    ((12, 10), (96, 80)),   # scale 8
    ((5, 11), (83, 130)),   # odd, non-integer
    ((9, 40), (100, 31)),   # downsampling along the width: some cells hold no pixel
    ((1, 6), (40, 96)),     # a single low-resolution row
]


@pytest.mark.parametrize(("lowres", "size"), SIZES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vim_exact_equals_full_argmax_on_random_logits(lowres, size, seed):
    g = torch.Generator().manual_seed(seed)
    for C in (2, 5, 19, 150) if seed == 0 else (4, 19):  # white noise: 150 classes is the slow case
        z = torch.randn(1 if C == 150 else 2, C, *lowres, generator=g) * (1 + seed)
        ref = full_argmax(z, size)
        got, stats = _vim_exact(z, size, work_limit=None)  # force the pruning path
        assert stats["path"] == "pruned"
        assert got.dtype == torch.int64 and got.shape == ref.shape
        assert torch.equal(got, ref), (C, int((got != ref).sum()))
        assert torch.equal(vim_exact(z, size), ref)  # default: may fall back to the full upsample


@pytest.mark.parametrize("seed", [0, 1])
def test_vim_exact_on_smooth_logits_prunes_and_is_exact(seed):
    for shape, size in [((1, 150, 16, 16), (128, 128)), ((2, 19, 8, 16), (128, 256)), ((1, 150, 7, 9), (97, 131))]:
        z = smooth_logits(shape, seed, factor=4)
        got, stats = _vim_exact(z, size)
        assert stats["path"] == "pruned", stats
        assert stats["ambiguous_pixels"] < 0.9 * shape[0] * size[0] * size[1]
        assert torch.equal(got, full_argmax(z, size))


@pytest.mark.parametrize(("lowres", "size"), SIZES[:4])
def test_vim_exact_with_exact_ties(lowres, size):
    g = torch.Generator().manual_seed(3)
    # few distinct values: many classes tie exactly at the corners and after interpolation
    z = torch.randint(0, 3, (2, 20, *lowres), generator=g).float()
    got, stats = _vim_exact(z, size, work_limit=None)
    assert stats["near_tie_pixels"] > 0
    assert torch.equal(got, full_argmax(z, size))
    # duplicated channels: the lower class id must win wherever the copy would win
    z = torch.randn(1, 12, *lowres, generator=g)
    z[:, 9] = z[:, 4]
    z[:, 7] = z[:, 4]
    z[:, 4] += 1.0  # make the tied triple win often
    z[:, 7] += 1.0
    z[:, 9] += 1.0
    ref = full_argmax(z, size)
    got, stats = _vim_exact(z, size, work_limit=None)
    assert stats["near_tie_pixels"] > 0 and 4 in ref.unique().tolist()
    assert not bool(((ref == 7) | (ref == 9)).any())
    assert torch.equal(got, ref)
    # all classes equal everywhere: class 0
    z = torch.full((1, 6, *lowres), 0.25)
    assert torch.equal(_vim_exact(z, size, work_limit=None)[0], torch.zeros(1, *size, dtype=torch.int64))


def test_vim_exact_single_class_batch_and_fallbacks():
    z = torch.randn(3, 1, 4, 5)
    assert torch.equal(vim_exact(z, (64, 80)), torch.zeros(3, 64, 80, dtype=torch.int64))
    torch.manual_seed(4)
    z = torch.randn(4, 7, 6, 7)
    size = (90, 100)
    ref = full_argmax(z, size)
    assert torch.equal(_vim_exact(z, size, work_limit=None)[0], ref)
    # each image decided on its own: same as the images one by one
    assert torch.equal(torch.cat([vim_exact(z[i:i + 1], size) for i in range(4)]), ref)
    # small outputs (H + W <= 128) and channels-last input use the full upsample: still equal
    small = (40, 50)
    got, stats = _vim_exact(z, small)
    assert stats["path"] == "full" and torch.equal(got, full_argmax(z, small))
    zcl = z.contiguous(memory_format=torch.channels_last)
    got, stats = _vim_exact(zcl, size)
    assert stats["path"] == "full" and torch.equal(got, full_argmax(zcl, size))
    # non-finite logits
    zinf = z.clone()
    zinf[0, 2, 1, 1] = float("inf")
    got, stats = _vim_exact(zinf, size)
    assert stats["path"] == "full" and torch.equal(got, full_argmax(zinf, size))
    # float64 input: full upsample
    z64 = z.double()
    assert torch.equal(vim_exact(z64, size), full_argmax(z64, size))


def test_vim_exact_white_noise_falls_back_to_full():
    z = torch.randn(1, 150, 16, 16, generator=torch.Generator().manual_seed(0))
    got, stats = _vim_exact(z, (128, 128))
    assert stats["path"] == "full" and "pairs" in stats["reason"]
    assert torch.equal(got, full_argmax(z, (128, 128)))


# ----------------------------------------------------------------------------- assumptions on torch


@pytest.mark.parametrize("threads", [1, 2])
def test_torch_generic_kernel_resizes_channels_independently(threads):
    """vim_exact resolves near ties by resizing a few gathered channels: bit-identical to the full resize."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(5)
        for shape, size in [((1, 150, 7, 9), (97, 131)), ((2, 19, 8, 16), (64, 128)), ((1, 40, 5, 6), (70, 200))]:
            z = torch.randn(shape, generator=g)
            assert _torch_uses_generic_kernel(z, size)
            ref = upsample(z, size)
            for k in (1, 2, 4, 5):
                classes = torch.randperm(shape[1], generator=g)[:k].sort().values
                assert torch.equal(upsample(z.index_select(1, classes), size), ref.index_select(1, classes))
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize(("n_in", "n_out"), [(7, 97), (8, 64), (9, 131), (40, 31), (1, 50), (5, 5)])
def test_axis_taps_describe_torch_interpolation(n_in, n_out):
    for axis in (0, 1):
        taps = _axis_taps(n_in, n_out, axis)
        assert taps is not None
        i0, start, count, tw0, tw1, valid = taps
        assert int(count.sum()) == n_out and bool((i0[1:] >= i0[:-1]).all())
        # rebuild a 1-D resize from the taps and compare with torch (2 taps, non-negative weights)
        x = torch.randn(3, n_in, dtype=torch.float64)
        w0 = torch.zeros(n_out, dtype=torch.float64)
        w1 = torch.zeros(n_out, dtype=torch.float64)
        for r in range(n_in):  # small loop in the test only
            w0[start[r]:start[r] + count[r]] = tw0[r, :count[r]].double()
            w1[start[r]:start[r] + count[r]] = tw1[r, :count[r]].double()
        i1 = torch.clamp(i0 + 1, max=n_in - 1)
        ours = x[:, i0] * w0 + x[:, i1] * w1
        xt = x.float().view(1, 3, n_in, 1) if axis == 0 else x.float().view(1, 3, 1, n_in)
        size = (n_out, 1) if axis == 0 else (1, n_out)
        theirs = upsample(xt, size).reshape(3, n_out).double()
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
