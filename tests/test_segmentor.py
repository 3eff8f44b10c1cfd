"""Segmentor: normalisation, whole / slide inference, flip and multi-scale TTA (spec §9.2, §11.13)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ppseg.errors import ConfigError
from ppseg.data.sample import Pad, Resize, invert_tensor
from ppseg.semantic.segmentor import Segmentor


class ConvNet(nn.Module):
    """A tiny, deliberately asymmetric net (a 1x3 kernel): output at input size, not flip-equivariant."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.num_classes = num_classes
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, (1, 3), padding=(0, 1))
        with torch.no_grad():
            self.conv.weight.normal_()
            self.conv.bias.normal_()

    def forward(self, x):
        out = self.conv(x)
        return [out, out * 0] if self.training else out


class WindowRecorder(nn.Module):
    """Returns ``i + 1`` everywhere for the i-th call and records where each window started.

    The input encodes coordinates: channel 0 = row index, channel 1 = column index.
    """

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, int, int, int]] = []  # (y1, x1, h, w)

    def forward(self, x):
        n, _, h, w = x.shape
        self.calls.append((int(x[0, 0, 0, 0]), int(x[0, 1, 0, 0]), h, w))
        out = torch.full((n, self.num_classes, h, w), float(len(self.calls)))
        out[:, 1] = -out[:, 1]
        return [out]


IDENTITY = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255, 1 / 255, 1 / 255)}  # normalise() is then x -> x


def coord_image(h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    return torch.stack([ys, xs, torch.zeros_like(ys)])[None]


def spec_windows(h: int, w: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """§9.2 (PaddleSeg slide_inference), written out independently: (y1, x1, y2, x2) row-major."""
    cw, ch = crop
    sw, sh = stride
    rows = 1 if h <= ch else math.ceil((h - ch) / sh) + 1
    cols = 1 if w <= cw else math.ceil((w - cw) / sw) + 1
    out = []
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
            out.append((max(y2 - ch, 0), max(x2 - cw, 0), y2, x2))
    return out


# ----------------------------------------------------------------------------- normalisation & whole


def test_normalize_0_255_rgb():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    seg = Segmentor(ConvNet(), mean=mean, std=std)
    img = torch.randint(0, 256, (2, 3, 5, 6), dtype=torch.uint8)
    got = seg.normalize(img)
    assert got.dtype == torch.float32
    for c in range(3):
        expected = (img[:, c].double() / 255.0 - mean[c]) / std[c]
        torch.testing.assert_close(got[:, c].double(), expected, rtol=1e-5, atol=1e-5)


def test_eval_whole_returns_model_logits_at_input_size():
    model = ConvNet(num_classes=5)
    seg = Segmentor(model).eval()
    img = torch.randint(0, 256, (2, 3, 7, 9), dtype=torch.uint8)
    x = (img.float() / 255 - 0.5) / 0.5
    logits = seg(img)
    assert logits.shape == (2, 5, 7, 9) and logits.dtype == torch.float32
    torch.testing.assert_close(logits, model(x), rtol=1e-5, atol=1e-5)
    assert torch.equal(seg.predict(img), logits.argmax(1))
    assert seg.predict(img).dtype == torch.int64
    assert seg.num_classes == 5


def test_training_forward_returns_list_of_logits():
    seg = Segmentor(ConvNet()).train()
    out = seg(torch.zeros(1, 3, 4, 4))
    assert isinstance(out, list) and len(out) == 2 and out[0].shape == (1, 4, 4, 4)
    single = Segmentor(nn.Conv2d(3, 2, 1)).train()(torch.zeros(1, 3, 4, 4))
    assert isinstance(single, list) and len(single) == 1


# ----------------------------------------------------------------------------- TTA


def test_flip_tta_is_average_of_plain_and_unflipped_flipped():
    model = ConvNet()
    img = torch.rand(1, 3, 6, 8) * 255
    x = (img / 255 - 0.5) / 0.5
    plain = model.eval()(x)
    unflipped = torch.flip(model(torch.flip(x, dims=[3])), dims=[3])
    assert not torch.allclose(plain, unflipped)  # the model is not flip-invariant: the test can fail
    got = Segmentor(model, flip=True).eval().predict_logits(img)
    torch.testing.assert_close(got, (plain + unflipped) / 2, rtol=1e-5, atol=1e-5)


def resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)


def test_multiscale_logits_fusion_averages_resized_logits():
    model = ConvNet().eval()
    h, w = 9, 11
    img = torch.rand(1, 3, h, w) * 255
    x = (img / 255 - 0.5) / 0.5
    scales = (0.5, 1.0, 1.5)
    outs = []
    for s in scales:
        size = (int(h * s + 0.5), int(w * s + 0.5))  # (5, 6), (9, 11), (14, 17)
        outs.append(resize(model(resize(x, size)), (h, w)))
    got = Segmentor(model, scales=scales, fusion="logits").eval().predict_logits(img)
    torch.testing.assert_close(got, sum(outs) / 3, rtol=1e-5, atol=1e-5)


def test_multiscale_flip_logits_fusion():
    model = ConvNet().eval()
    h, w = 8, 10
    img = torch.rand(1, 3, h, w) * 255
    x = (img / 255 - 0.5) / 0.5
    total = 0
    for s in (0.75, 1.25):
        xs = resize(x, (int(h * s + 0.5), int(w * s + 0.5)))
        total = total + resize(model(xs), (h, w))
        total = total + resize(torch.flip(model(torch.flip(xs, dims=[3])), dims=[3]), (h, w))
    got = Segmentor(model, scales=(0.75, 1.25), flip=True).eval().predict_logits(img)
    torch.testing.assert_close(got, total / 4, rtol=1e-5, atol=1e-5)


def test_multiscale_softmax_fusion_sums_probabilities_with_chained_resize():
    """release/2.1-2.7: softmax of each resized logits map, summed; each scale resized from the last."""
    model = ConvNet().eval()
    h, w = 9, 11
    img = torch.rand(1, 3, h, w) * 255
    x = (img / 255 - 0.5) / 0.5
    scales = (0.5, 1.0)
    chained, independent, cur = 0, 0, x
    for s in scales:
        size = (int(h * s + 0.5), int(w * s + 0.5))
        cur = resize(cur, size)
        chained = chained + resize(model(cur), (h, w)).softmax(1)
        independent = independent + resize(model(resize(x, size)), (h, w)).softmax(1)
    got = Segmentor(model, scales=scales, fusion="softmax").eval().predict_logits(img)
    torch.testing.assert_close(got, chained, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, independent, atol=1e-4)  # scale 1.0 came from the 0.5 image
    torch.testing.assert_close(got.sum(1), torch.full((1, h, w), 2.0), rtol=1e-5, atol=1e-5)
    # the logits mode of the same augmentations differs
    logit_mode = Segmentor(model, scales=scales, fusion="logits").eval().predict_logits(img)
    assert not torch.allclose(logit_mode, got)


def test_softmax_fusion_flip_only():
    model = ConvNet().eval()
    img = torch.rand(2, 3, 5, 7) * 255
    x = (img / 255 - 0.5) / 0.5
    expected = model(x).softmax(1) + torch.flip(model(torch.flip(x, dims=[3])), dims=[3]).softmax(1)
    got = Segmentor(model, flip=True, fusion="softmax").eval().predict_logits(img)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- sliding window


@pytest.mark.parametrize(("h", "w", "crop", "stride"), [
    (10, 13, (5, 4), (3, 3)),   # last window clamped to the border in both directions
    (8, 8, (4, 4), (4, 4)),     # no overlap
    (6, 20, (8, 4), (5, 2)),    # many columns, stride smaller than the crop
    (3, 12, (5, 5), (2, 2)),    # image shorter than the crop: one row of full height
])
def test_slide_windows_follow_spec_and_overlaps_are_averaged(h, w, crop, stride):
    model = WindowRecorder()
    seg = Segmentor(model, mode="slide", crop_size=crop, stride=stride, **IDENTITY).eval()
    out = seg.predict_logits(coord_image(h, w))
    windows = spec_windows(h, w, crop, stride)
    assert model.calls == [(y1, x1, y2 - y1, x2 - x1) for y1, x1, y2, x2 in windows]
    total, count = torch.zeros(h, w), torch.zeros(h, w)
    for i, (y1, x1, y2, x2) in enumerate(windows):
        total[y1:y2, x1:x2] += i + 1
        count[y1:y2, x1:x2] += 1
    assert count.min() >= 1
    assert out.shape == (1, 2, h, w)
    torch.testing.assert_close(out[0, 0], total / count)
    torch.testing.assert_close(out[0, 1], -total / count)


def test_slide_window_count_example():
    # H=10, crop h=4, stride 3: rows = ceil(6/3)+1 = 3; W=13, crop w=5, stride 3: cols = ceil(8/3)+1 = 4
    model = WindowRecorder()
    Segmentor(model, mode="slide", crop_size=(5, 4), stride=(3, 3), **IDENTITY).eval().predict_logits(coord_image(10, 13))
    assert len(model.calls) == 12
    assert sorted({c[0] for c in model.calls}) == [0, 3, 6]
    assert sorted({c[1] for c in model.calls}) == [0, 3, 6, 8]  # 9 clamped to 13 - 5
    assert {(c[2], c[3]) for c in model.calls} == {(4, 5)}


def test_slide_matches_manual_window_average_with_a_conv_net():
    model = ConvNet().eval()
    h, w, crop, stride = 9, 12, (6, 5), (4, 3)
    img = torch.rand(1, 3, h, w) * 255
    x = (img / 255 - 0.5) / 0.5
    total, count = torch.zeros(1, 4, h, w), torch.zeros(1, 1, h, w)
    for y1, x1, y2, x2 in spec_windows(h, w, crop, stride):
        total[..., y1:y2, x1:x2] += model(x[..., y1:y2, x1:x2])
        count[..., y1:y2, x1:x2] += 1
    got = Segmentor(model, mode="slide", crop_size=crop, stride=stride).eval().predict_logits(img)
    torch.testing.assert_close(got, total / count, rtol=1e-5, atol=1e-5)
    # windows see zero padding at their own borders, so this differs from whole-image inference
    assert not torch.allclose(got, Segmentor(model).eval().predict_logits(img), atol=1e-4)


@pytest.mark.parametrize("crop", [(12, 9), (20, 30)])
def test_slide_with_crop_not_smaller_than_image_equals_whole(crop):
    model = ConvNet().eval()
    img = torch.rand(2, 3, 9, 12) * 255
    whole = Segmentor(model).eval().predict_logits(img)
    slide = Segmentor(model, mode="slide", crop_size=crop, stride=(4, 4)).eval().predict_logits(img)
    torch.testing.assert_close(slide, whole)


def test_slide_runs_on_each_scaled_image():
    model = WindowRecorder()
    seg = Segmentor(model, mode="slide", crop_size=(4, 4), stride=(4, 4), scales=(0.5,), **IDENTITY).eval()
    out = seg.predict_logits(coord_image(16, 16))
    assert out.shape == (1, 2, 16, 16)
    assert [(c[2], c[3]) for c in model.calls] == [(4, 4)] * 4  # the 8x8 image: 2x2 windows


# ----------------------------------------------------------------------------- mapping back to the original image


def test_predict_original_undoes_the_ops_in_reverse_order():
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 12, 16)
    # original 20x30 -> resized to 8x10 -> padded to 12x16
    ops = [Resize((20, 30), (8, 10)), Pad((8, 10), 0, 4, 0, 6)]
    got = invert_tensor(ops, logits)
    expected = resize(logits[..., :8, :10], (20, 30))
    assert got.shape == (1, 3, 20, 30)
    torch.testing.assert_close(got, expected)
    wrong_order = resize(logits, (20, 30))[..., :8, :10]
    assert wrong_order.shape != got.shape
    # padded first, resized afterwards: the resize is undone first
    ops2 = [Pad((5, 7), 0, 5, 0, 3), Resize((10, 10), (4, 4))]
    got2 = invert_tensor(ops2, torch.randn(1, 2, 4, 4))
    assert got2.shape == (1, 2, 5, 7)
    assert invert_tensor([], logits) is logits

    class Identity(torch.nn.Module):
        num_classes = 3

        def forward(self, x):
            return logits

    seg = Segmentor(Identity()).eval()
    labels = seg.predict_original(torch.zeros(1, 3, 12, 16), ops, (20, 30))
    assert torch.equal(labels, expected.argmax(1))


# ----------------------------------------------------------------------------- constructor errors


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"mean": (0.5, 0.5)}, "mean"),
    ({"std": (0.5, 0.5, 0.5, 0.5)}, "std"),
    ({"std": (0.5, 0.0, 0.5)}, "std"),
    ({"mode": "tile"}, "mode"),
    ({"mode": "slide"}, "crop_size"),
    ({"mode": "slide", "crop_size": (4, 4)}, "stride"),
    ({"mode": "slide", "stride": (4, 4)}, "crop_size"),
    ({"mode": "slide", "crop_size": (4, 4, 4), "stride": (2, 2)}, "crop_size"),
    ({"mode": "slide", "crop_size": (0, 4), "stride": (2, 2)}, "crop_size"),
    ({"mode": "slide", "crop_size": (4, 4), "stride": (5, 2)}, "stride"),
    ({"scales": ()}, "scales"),
    ({"scales": (1.0, 0.0)}, "scales"),
    ({"scales": (-0.5,)}, "scales"),
    ({"fusion": "max"}, "fusion"),
])
def test_constructor_errors(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        Segmentor(ConvNet(), **kwargs)


# ----------------------------------------------------------------------------- postprocess (VIM)


class LowResNet(nn.Module):
    """Logits at 1/4 resolution (``forward_lowres``); ``forward`` resizes them to the input, like PP-MobileSeg."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.num_classes = num_classes
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 4, stride=4)
        with torch.no_grad():
            self.conv.weight.normal_()
            self.conv.bias.normal_()

    def forward_lowres(self, x):
        return self.conv(x)

    def forward(self, x):
        return resize(self.forward_lowres(x), tuple(x.shape[-2:]))


@pytest.mark.parametrize("size", [(64, 96), (20, 28)])  # H + W > 128 runs vim_exact's pruning path
def test_postprocess_vim_exact_equals_argmax(size):
    from ppseg.semantic.vim import vim

    model = LowResNet().eval()
    img = torch.rand(2, 3, *size) * 255
    plain = Segmentor(model).eval()
    exact = Segmentor(model, postprocess="vim_exact").eval()
    assert exact.postprocess == "vim_exact" and plain.postprocess == "argmax"
    labels = exact.predict(img)
    assert labels.dtype == torch.int64 and labels.shape == (2, *size)
    assert torch.equal(labels, plain.predict(img))
    # predict_logits is unchanged by postprocess
    torch.testing.assert_close(exact.predict_logits(img), plain.predict_logits(img))
    seg = Segmentor(model, postprocess="vim").eval()
    low = model.forward_lowres(seg.normalize(img))
    assert torch.equal(seg.predict(img), vim(low, size))


def test_postprocess_vim_differs_from_argmax_where_a_class_only_wins_between_pixels():
    class Stub(nn.Module):  # low-res logits independent of the image: classes 0 | 2, class 1 second at both
        num_classes = 3

        def forward_lowres(self, x):
            z = torch.tensor([[1.0, 0.0], [0.9, 0.9], [0.0, 1.0]]).view(1, 3, 1, 2)
            return z.expand(x.shape[0], -1, -1, -1)

        def forward(self, x):
            return resize(self.forward_lowres(x), tuple(x.shape[-2:]))

    img = torch.zeros(1, 3, 4, 8)
    plain = Segmentor(Stub()).predict(img)
    assert 1 in plain.unique().tolist()
    assert torch.equal(Segmentor(Stub(), postprocess="vim_exact").predict(img), plain)
    labels = Segmentor(Stub(), postprocess="vim").predict(img)
    assert set(labels.unique().tolist()) == {0, 2}


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"postprocess": "softmax"}, "postprocess"),
    ({"postprocess": "vim", "flip": True}, "flip"),
    ({"postprocess": "vim_exact", "scales": (0.75, 1.0)}, "scales"),
    ({"postprocess": "vim", "mode": "slide", "crop_size": (4, 4), "stride": (4, 4)}, "slide"),
])
def test_postprocess_errors(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        Segmentor(LowResNet(), **kwargs)


@pytest.mark.parametrize("post", ["vim", "vim_exact"])
def test_postprocess_vim_needs_forward_lowres(post):
    with pytest.raises(ConfigError, match=r"forward_lowres\), e\.g\. pp_mobileseg_\*"):
        Segmentor(ConvNet(), postprocess=post)
    Segmentor(ConvNet(), postprocess="argmax")  # fine without it


class _LowResStub(nn.Module):
    """A 1/4-resolution 'network': avg-pool + 1x1 conv; eval forward = bilinear upsample of it."""

    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.num_classes = num_classes
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward_lowres(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.avg_pool2d(x, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.forward_lowres(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_predict_original_vim_exact_equals_argmax_through_resizes():
    images = torch.rand(1, 3, 40, 56) * 255
    ops = [Resize((61, 83), (40, 56))]  # the image was 61x83 before a val Resize to 40x56
    argmax = Segmentor(_LowResStub()).eval().predict_original(images, ops, (61, 83))
    exact = Segmentor(_LowResStub(), postprocess="vim_exact").eval().predict_original(images, ops, (61, 83))
    direct = F.interpolate(_LowResStub().forward_lowres((images / 255 - 0.5) / 0.5), size=(61, 83),
                           mode="bilinear", align_corners=False).argmax(1)
    assert exact.shape == (1, 61, 83)
    assert torch.equal(exact, direct)
    assert (argmax == exact).float().mean() > 0.9  # argmax goes through two resizes, VIM through one


def test_predict_original_vim_refuses_padding():
    seg = Segmentor(_LowResStub(), postprocess="vim").eval()
    with pytest.raises(ConfigError, match="can only undo resizes, not Pad"):
        seg.predict_original(torch.rand(1, 3, 32, 32) * 255, [Pad((30, 30), 0, 2, 0, 2)], (30, 30))
