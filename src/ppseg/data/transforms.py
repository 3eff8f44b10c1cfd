"""Data transforms with PaddleSeg semantics (spec section 8.1), written once per target kind.

Every transform is a callable ``t(sample, rng) -> sample`` on a
:class:`~ppseg.data.sample.Sample`: an image (float32 ``H x W x 3`` RGB in 0..255, not
normalised; the model wrapper normalises) plus named, typed targets (a semantic label is
the ``"label"`` :attr:`~ppseg.data.sample.Kind.MASK`). Geometric transforms go through the
sample's ``resize``/``pad``/``crop``/``flip``/``warp_affine``, which act on every target by
its kind (masks nearest, alpha bilinear, points and boxes by their coordinates) and record
an invertible op in ``sample.ops`` (this replaces PaddleSeg's ``trans_info``).

All randomness comes from the ``rng`` argument (a ``numpy.random.Generator``),
never from global state, so a sample seed fully determines the augmentation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageEnhance

from ppseg.data.sample import Sample
from ppseg.errors import ConfigError

__all__ = [
    "Transform",
    "Compose",
    "Resize",
    "ResizeByShort",
    "ResizeByLong",
    "ResizeStepScaling",
    "RandomPaddingCrop",
    "Padding",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "RandomDistort",
    "RandomRotation",
    "RandomBlur",
    "RandomScaleAspect",
    "TRANSFORMS",
    "build_transforms",
    "describe_transforms",
    "read_transforms",
    "TRANSFORMS_FORMAT_VERSION",
]

INTERP: dict[str, int] = {
    "NEAREST": cv2.INTER_NEAREST,
    "LINEAR": cv2.INTER_LINEAR,
    "CUBIC": cv2.INTER_CUBIC,
    "AREA": cv2.INTER_AREA,
    "LANCZOS4": cv2.INTER_LANCZOS4,
}


# --------------------------------------------------------------------------- helpers
def _err(owner: str, arg: str, allowed: str, value: object) -> ConfigError:
    return ConfigError(f"{owner}: `{arg}` must be {allowed}, got {value!r}")


def _check_prob(owner: str, arg: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise _err(owner, arg, "a number in [0, 1]", value)
    return float(value)


def _check_number(owner: str, arg: str, value: float, lo: float, hi: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        rng = f"[{lo}, {hi}]" if hi != math.inf else f">= {lo}"
        raise _err(owner, arg, f"a number {rng}", value)
    return float(value)


def _check_pos_int(owner: str, arg: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise _err(owner, arg, "a positive integer", value)
    return int(value)


#: the longest side (pixels) a transform may resize, crop or pad to: a larger one is a typo that
#: would allocate gigabytes per image (the same bound as an exported model's input side)
MAX_SIDE = 8192


def _check_side(owner: str, arg: str, value: int) -> int:
    """A positive integer number of pixels, at most :data:`MAX_SIDE`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 < value <= MAX_SIDE:
        raise _err(owner, arg, f"a positive integer of at most {MAX_SIDE} pixels", value)
    return int(value)


def _check_size(owner: str, arg: str, value: int | Sequence[int]) -> tuple[int, int]:
    """Accept ``n`` or ``(w, h)`` with positive ints (at most :data:`MAX_SIDE`); return ``(w, h)``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 < v <= MAX_SIDE for v in value)
    ):
        raise _err(owner, arg, f"a positive integer or a [width, height] pair of them (at most {MAX_SIDE})", value)
    return int(value[0]), int(value[1])


def _check_interp(owner: str, value: str) -> str:
    if value not in INTERP and value != "RANDOM":
        raise _err(owner, "interp", f"one of {sorted(INTERP) + ['RANDOM']}", value)
    return value


def _pick_interp(name: str, rng: np.random.Generator) -> int:
    if name == "RANDOM":
        keys = sorted(INTERP)
        return INTERP[keys[int(rng.integers(0, len(keys)))]]
    return INTERP[name]


class Transform:
    """Base class: ``__call__(sample, rng) -> sample``."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order. The image is made float32 first."""

    def __init__(self, transforms: Sequence[Callable[[Sample, np.random.Generator], Sample]] = ()):
        if not isinstance(transforms, (list, tuple)):
            raise _err("Compose", "transforms", "a list of transforms", transforms)
        for t in transforms:
            if not callable(t):
                raise _err("Compose", "transforms", "a list of callables", t)
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample.image = np.asarray(sample.image, dtype=np.float32)
        for t in self.transforms:
            sample = t(sample, rng)
        return sample


# --------------------------------------------------------------------------- resizing
class Resize(Transform):
    """Resize to ``target_size`` = (w, h).

    ``keep_ratio``: scale = min(max(target)/max(img), min(target)/min(img)),
    new side = round(side * scale). ``size_divisor``: each side rounded UP to a
    multiple (by resizing, not padding). ``interp`` in NEAREST, LINEAR, CUBIC,
    AREA, LANCZOS4, RANDOM.
    """

    def __init__(
        self,
        *,
        target_size: int | Sequence[int] = (512, 512),
        keep_ratio: bool = False,
        size_divisor: int | None = None,
        interp: str = "LINEAR",
    ):
        self.target_size = _check_size("Resize", "target_size", target_size)
        self.keep_ratio = bool(keep_ratio)
        if size_divisor is not None:
            _check_side("Resize", "size_divisor", size_divisor)
        self.size_divisor = size_divisor
        self.interp = _check_interp("Resize", interp)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """Return the ``(w, h)`` this transform produces for an ``h x w`` image."""
        tw, th = self.target_size
        if self.keep_ratio:
            scale = min(max(tw, th) / max(w, h), min(tw, th) / min(w, h))
            tw, th = round(w * scale), round(h * scale)
        if self.size_divisor:
            d = self.size_divisor
            tw, th = math.ceil(tw / d) * d, math.ceil(th / d) * d
        return max(int(tw), 1), max(int(th), 1)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.hw
        return sample.resize(self.output_size(h, w), _pick_interp(self.interp, rng))


class ResizeByShort(Transform):
    """Scale so the short side equals ``short_size`` (sides rounded).

    ``max_size`` (optional) caps the long side: the scale becomes ``max_size / long side``,
    for this image only. (PaddleSeg instead stores the reduced short side on the transform,
    so every later image is shrunk to it too, and floors it first; a deliberate difference.)
    A list for ``short_size`` is rejected: PaddleSeg picks one entry at random once, when the
    transform is built, and uses it for every image.
    """

    def __init__(self, *, short_size: int | list[int] = 512, max_size: int | None = None,
                 interp: str = "LINEAR"):
        if isinstance(short_size, (list, tuple)):
            raise ConfigError(
                f"ResizeByShort: `short_size` must be one positive integer, got the list {list(short_size)!r}. "
                "PaddleSeg picks one entry of a list at random once, when the transform is built, and uses "
                "it for every image: write that one size (e.g. short_size: 512); for a random scale per "
                "image use ResizeStepScaling")
        self.short_size = _check_side("ResizeByShort", "short_size", short_size)
        if max_size is not None:
            _check_side("ResizeByShort", "max_size", max_size)
        self.max_size = max_size
        self.interp = _check_interp("ResizeByShort", interp)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.hw
        scale = self.short_size / min(h, w)
        if self.max_size is not None and max(h, w) * scale > self.max_size:
            scale = self.max_size / max(h, w)
        size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
        return sample.resize(size, _pick_interp(self.interp, rng))


class ResizeByLong(Transform):
    """Scale so the long side equals ``long_size`` (sides rounded)."""

    def __init__(self, *, long_size: int = 512, interp: str = "LINEAR"):
        self.long_size = _check_side("ResizeByLong", "long_size", long_size)
        self.interp = _check_interp("ResizeByLong", interp)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        h, w = sample.hw
        scale = self.long_size / max(h, w)
        size = (max(int(round(w * scale)), 1), max(int(round(h * scale)), 1))
        return sample.resize(size, _pick_interp(self.interp, rng))


class ResizeStepScaling(Transform):
    """Random rescale by a factor from ``linspace(min, max, int((max-min)/step + 1))``.

    ``scale_step_size == 0`` draws the factor uniformly in ``[min, max]``;
    ``min == max`` always uses ``min``. New size = round(factor * side); image
    bilinear, masks nearest.
    """

    def __init__(
        self,
        *,
        min_scale_factor: float = 0.75,
        max_scale_factor: float = 1.25,
        scale_step_size: float = 0.25,
    ):
        name = "ResizeStepScaling"
        self.min_scale_factor = _check_number(name, "min_scale_factor", min_scale_factor, 1e-6)
        self.max_scale_factor = _check_number(name, "max_scale_factor", max_scale_factor, 1e-6)
        if self.min_scale_factor > self.max_scale_factor:
            raise _err(name, "max_scale_factor", f">= min_scale_factor ({min_scale_factor})", max_scale_factor)
        self.scale_step_size = _check_number(name, "scale_step_size", scale_step_size, 0.0)

    def factors(self) -> list[float] | None:
        """The discrete factor set, or ``None`` when the factor is continuous/fixed."""
        lo, hi, step = self.min_scale_factor, self.max_scale_factor, self.scale_step_size
        if lo == hi or step == 0:
            return None
        return np.linspace(lo, hi, int((hi - lo) / step + 1)).tolist()

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        lo, hi = self.min_scale_factor, self.max_scale_factor
        factors = self.factors()
        if lo == hi:
            factor = lo
        elif factors is None:
            factor = float(rng.uniform(lo, hi))
        else:
            factor = factors[int(rng.integers(0, len(factors)))]
        h, w = sample.hw
        size = (max(int(round(factor * w)), 1), max(int(round(factor * h)), 1))
        return sample.resize(size, cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- crop / pad
class RandomPaddingCrop(Transform):
    """Pad bottom/right up to ``crop_size`` = (w, h), then crop at a random offset.

    Image padding ``im_padding_value``, label padding ``label_padding_value``.
    With ``category_max_ratio < 1`` the offset is redrawn (up to ``loop_times``)
    until no single class (``ignore_index`` excluded) covers more than that
    ratio of the crop; the default 1.0 never redraws. The image and every target
    are cut at the accepted window (the last one tried when none passes).
    PaddleSeg's loop puts the *label* crop in place of the image when a window
    passes and leaves the image uncropped when none does; ppseg does not copy that.
    """

    def __init__(
        self,
        *,
        crop_size: int | Sequence[int] = (512, 512),
        im_padding_value: float = 127.5,
        label_padding_value: int = 255,
        category_max_ratio: float = 1.0,
        ignore_index: int = 255,
        loop_times: int = 10,
    ):
        name = "RandomPaddingCrop"
        self.crop_size = _check_size(name, "crop_size", crop_size)
        self.im_padding_value = _check_number(name, "im_padding_value", im_padding_value, 0, 255)
        self.label_padding_value = int(_check_number(name, "label_padding_value", label_padding_value, 0))
        self.category_max_ratio = _check_number(name, "category_max_ratio", category_max_ratio, 1e-6, 1.0)
        self.ignore_index = int(ignore_index)
        self.loop_times = _check_pos_int(name, "loop_times", loop_times)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        cw, ch = self.crop_size
        h, w = sample.hw
        if (h, w) == (ch, cw):
            return sample
        sample.pad(0, ch - h, 0, cw - w, self.im_padding_value, self.label_padding_value)
        h, w = sample.hw
        label = sample.get("label")
        tries = self.loop_times if (self.category_max_ratio < 1.0 and label is not None) else 1
        for _ in range(tries):
            y0 = int(rng.integers(0, h - ch + 1))
            x0 = int(rng.integers(0, w - cw + 1))
            if tries == 1:
                break
            crop = label[y0 : y0 + ch, x0 : x0 + cw]
            _, counts = np.unique(crop[crop != self.ignore_index], return_counts=True)
            if len(counts) > 1 and counts.max() / counts.sum() < self.category_max_ratio:
                break
        return sample.crop(y0, x0, ch, cw)


class Padding(Transform):
    """Pad bottom/right to ``target_size`` = (w, h) (val).

    An image larger than the target raises :class:`ConfigError`.
    """

    def __init__(
        self,
        *,
        target_size: int | Sequence[int] = (512, 512),
        im_padding_value: float = 127.5,
        label_padding_value: int = 255,
    ):
        self.target_size = _check_size("Padding", "target_size", target_size)
        self.im_padding_value = _check_number("Padding", "im_padding_value", im_padding_value, 0, 255)
        self.label_padding_value = int(_check_number("Padding", "label_padding_value", label_padding_value, 0))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        tw, th = self.target_size
        h, w = sample.hw
        if h > th or w > tw:
            raise ConfigError(
                f"Padding: image of size (w={w}, h={h}) is larger than `target_size` {list(self.target_size)}"
            )
        return sample.pad(0, th - h, 0, tw - w, self.im_padding_value, self.label_padding_value)


# --------------------------------------------------------------------------- flips
class RandomHorizontalFlip(Transform):
    """Flip the image and its targets left-right with probability ``prob``."""

    def __init__(self, *, prob: float = 0.5):
        self.prob = _check_prob("RandomHorizontalFlip", "prob", prob)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return sample.flip(1) if rng.random() < self.prob else sample


class RandomVerticalFlip(Transform):
    """Flip the image and its targets top-bottom with probability ``prob``."""

    def __init__(self, *, prob: float = 0.1):
        self.prob = _check_prob("RandomVerticalFlip", "prob", prob)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        return sample.flip(0) if rng.random() < self.prob else sample


# --------------------------------------------------------------------------- photometric
def _hue(im: Image.Image, delta: float) -> Image.Image:
    """Shift the PIL HSV hue channel (0..255 wraps) by ``delta``."""
    hsv = np.array(im.convert("HSV"))
    shifted = np.mod(np.trunc(hsv[..., 0].astype(np.float64) + delta), 256)
    hsv[..., 0] = shifted.astype(np.uint8)
    return Image.frombytes("HSV", im.size, hsv.tobytes()).convert("RGB")


class RandomDistort(Transform):
    """PaddleSeg colour jitter through PIL.

    The five ops (brightness, contrast, saturation, sharpness, hue) run in a
    random order; each is applied with its ``*_prob``. Enhance factors are
    uniform in ``[1 - range, 1 + range]`` (PIL ``ImageEnhance``); the hue shift
    is uniform in ``[-hue_range, hue_range]`` on PIL's 0..255 HSV hue channel.
    The image is clipped to 0..255 and truncated to uint8 for PIL, and returned as
    float32 (PaddleSeg casts without clipping, so out-of-range floats wrap there).
    """

    _OPS = ("brightness", "contrast", "saturation", "sharpness", "hue")

    def __init__(
        self,
        *,
        brightness_range: float = 0.5,
        brightness_prob: float = 0.5,
        contrast_range: float = 0.5,
        contrast_prob: float = 0.5,
        saturation_range: float = 0.5,
        saturation_prob: float = 0.5,
        hue_range: float = 18,
        hue_prob: float = 0.5,
        sharpness_range: float = 0.5,
        sharpness_prob: float = 0,
    ):
        n = "RandomDistort"
        self.brightness_range = _check_number(n, "brightness_range", brightness_range, 0, 1)
        self.contrast_range = _check_number(n, "contrast_range", contrast_range, 0, 1)
        self.saturation_range = _check_number(n, "saturation_range", saturation_range, 0, 1)
        self.sharpness_range = _check_number(n, "sharpness_range", sharpness_range, 0, 1)
        self.hue_range = _check_number(n, "hue_range", hue_range, 0, 255)
        self.brightness_prob = _check_prob(n, "brightness_prob", brightness_prob)
        self.contrast_prob = _check_prob(n, "contrast_prob", contrast_prob)
        self.saturation_prob = _check_prob(n, "saturation_prob", saturation_prob)
        self.hue_prob = _check_prob(n, "hue_prob", hue_prob)
        self.sharpness_prob = _check_prob(n, "sharpness_prob", sharpness_prob)

    def _apply(self, op: str, im: Image.Image, rng: np.random.Generator) -> Image.Image:
        if op == "hue":
            return _hue(im, float(rng.uniform(-self.hue_range, self.hue_range)))
        r = getattr(self, f"{op}_range")
        factor = float(rng.uniform(1.0 - r, 1.0 + r))
        enhancer = {
            "brightness": ImageEnhance.Brightness,
            "contrast": ImageEnhance.Contrast,
            "saturation": ImageEnhance.Color,
            "sharpness": ImageEnhance.Sharpness,
        }[op]
        return enhancer(im).enhance(factor)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        order = rng.permutation(len(self._OPS))
        im = Image.fromarray(np.clip(sample.image, 0, 255).astype(np.uint8))
        for i in order:
            op = self._OPS[int(i)]
            if rng.uniform(0.0, 1.0) < getattr(self, f"{op}_prob"):
                im = self._apply(op, im, rng)
        sample.image = np.asarray(im, dtype=np.float32).copy()
        return sample


# --------------------------------------------------------------------------- geometric aug
class RandomRotation(Transform):
    """Rotate by an angle uniform in ``[-max_rotation, max_rotation]`` degrees.

    The canvas is enlarged to hold the whole rotated image (new w = int(h·|sin| +
    w·|cos|), new h = int(h·|cos| + w·|sin|), centre (w//2, h//2)); new pixels
    are ``im_padding_value`` / ``label_padding_value``. Image bilinear, masks nearest.
    """

    def __init__(
        self, *, max_rotation: float = 15, im_padding_value: float = 127.5, label_padding_value: int = 255
    ):
        n = "RandomRotation"
        self.max_rotation = _check_number(n, "max_rotation", max_rotation, 0, 180)
        self.im_padding_value = _check_number(n, "im_padding_value", im_padding_value, 0, 255)
        self.label_padding_value = int(_check_number(n, "label_padding_value", label_padding_value, 0))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.max_rotation <= 0:
            return sample
        angle = float(rng.uniform(-self.max_rotation, self.max_rotation))
        h, w = sample.hw
        cx, cy = w // 2, h // 2
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        cos, sin = abs(m[0, 0]), abs(m[0, 1])
        nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
        m[0, 2] += nw / 2 - cx
        m[1, 2] += nh / 2 - cy
        return sample.warp_affine(m, (nw, nh), self.im_padding_value, self.label_padding_value)


class RandomBlur(Transform):
    """Blur the image (PaddleSeg rule): applied when ``rng.integers(0, int(1/prob)) == 0``.

    The kernel size is drawn in 3..9 and made odd (3, 5, 7, 9); Gaussian sigma
    is derived from the kernel size (OpenCV sigma 0). ``blur_type`` in
    gaussian, median, blur, random (PaddleSeg's draw: ``u = rng.random()``,
    gaussian if u < 0.3, median if u < 0.6, else box blur). ``prob == 0``
    never blurs; ``prob >= 1`` always blurs, as in PaddleSeg. The blurred image
    is clipped to 0..255 before the uint8 cast (PaddleSeg wraps out-of-range floats).
    """

    BLUR_TYPES = ("gaussian", "median", "blur", "random")

    def __init__(self, *, prob: float = 0.1, blur_type: str = "gaussian"):
        self.prob = _check_prob("RandomBlur", "prob", prob)
        if blur_type not in self.BLUR_TYPES:
            raise _err("RandomBlur", "blur_type", f"one of {list(self.BLUR_TYPES)}", blur_type)
        self.blur_type = blur_type

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.prob <= 0:
            return sample
        n = 1 if self.prob >= 1 else int(1.0 / self.prob)
        if int(rng.integers(0, n)) != 0:
            return sample
        k = int(rng.integers(3, 10))
        k = min(k + 1 if k % 2 == 0 else k, 9)
        kind = self.blur_type
        if kind == "random":
            u = float(rng.random())
            kind = "gaussian" if u < 0.3 else "median" if u < 0.6 else "blur"
        img = np.clip(sample.image, 0, 255).astype(np.uint8)
        if kind == "gaussian":
            img = cv2.GaussianBlur(img, (k, k), 0, 0)
        elif kind == "median":
            img = cv2.medianBlur(img, k)
        else:
            img = cv2.blur(img, (k, k))
        sample.image = img.astype(np.float32)
        return sample


class RandomScaleAspect(Transform):
    """Crop a random region (area fraction in ``[min_scale, 1]``, aspect in
    ``[aspect_ratio, 1/aspect_ratio]``) and resize it back to the input size.

    Up to 10 attempts; if none fits, the sample is unchanged. ``min_scale == 0``
    or ``aspect_ratio == 0`` disables the transform.
    """

    def __init__(self, *, min_scale: float = 0.5, aspect_ratio: float = 0.33):
        self.min_scale = _check_number("RandomScaleAspect", "min_scale", min_scale, 0, 1)
        self.aspect_ratio = _check_number("RandomScaleAspect", "aspect_ratio", aspect_ratio, 0, 1)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if self.min_scale == 0 or self.aspect_ratio == 0:
            return sample
        h, w = sample.hw
        for _ in range(10):
            area = h * w * float(rng.uniform(self.min_scale, 1.0))
            ratio = float(rng.uniform(self.aspect_ratio, 1.0 / self.aspect_ratio))
            dw, dh = int(math.sqrt(area * ratio)), int(math.sqrt(area / ratio))
            if int(rng.integers(0, 10)) < 5:
                dw, dh = dh, dw
            if 0 < dh < h and 0 < dw < w:
                y0 = int(rng.integers(0, h - dh))
                x0 = int(rng.integers(0, w - dw))
                sample.crop(y0, x0, dh, dw, contiguous=False)
                sample.resize((w, h), cv2.INTER_LINEAR)
                break
        return sample


TRANSFORMS: dict[str, type[Transform]] = {
    "Resize": Resize,
    "ResizeByShort": ResizeByShort,
    "ResizeByLong": ResizeByLong,
    "ResizeStepScaling": ResizeStepScaling,
    "RandomPaddingCrop": RandomPaddingCrop,
    "Padding": Padding,
    "RandomHorizontalFlip": RandomHorizontalFlip,
    "RandomVerticalFlip": RandomVerticalFlip,
    "RandomDistort": RandomDistort,
    "RandomRotation": RandomRotation,
    "RandomBlur": RandomBlur,
    "RandomScaleAspect": RandomScaleAspect,
}


def build_transforms(specs: Sequence[dict[str, Any] | Transform] | None, cfg: Any = None,
                     key: str = "transforms", source: str = "") -> Compose:
    """The one transform builder: a :class:`Compose` from ``[{"type": "Resize", ...}, ...]`` (or
    transform objects), for configs, datasets, sidecars and weights files alike.

    Types and values are validated like every config section (unknown type or key -> "did you
    mean", wrong type -> the expected type). Errors name ``cfg``'s file and ``key`` when a loaded
    :class:`~ppseg.config.Config` is given, else ``source`` (e.g. a sidecar's path). ``Normalize``
    is rejected: normalisation belongs to the model (its mean/std), not the data.
    """
    from ppseg.config import Config, build_typed

    if cfg is None:
        cfg = Config({}, source, {})
    if specs is None:
        specs = []
    if not isinstance(specs, (list, tuple)):
        raise ConfigError(f"{cfg.where(key)}: expected a list of transforms, got {specs!r}")
    out: list[Transform] = []
    for i, spec in enumerate(specs):
        if callable(spec) and not isinstance(spec, dict):
            out.append(spec)  # type: ignore[arg-type]
            continue
        if isinstance(spec, dict) and spec.get("type") == "Normalize":
            raise ConfigError(
                f"{cfg.where(f'{key}[{i}]')}: Normalize is not a data transform in ppseg; "
                "set the mean/std on the model instead and remove it from the transforms"
            )
        out.append(build_typed(spec, TRANSFORMS, cfg, f"{key}[{i}]"))
    return Compose(out)


#: the version of the transforms description in weights files and sidecars (a list of
#: ``{"type": ..., <kwargs>}`` as in a config); readers accept this and older (unversioned) files
TRANSFORMS_FORMAT_VERSION = 1


def describe_transforms(specs: Sequence[Any] | None) -> dict[str, Any]:
    """The versioned description of a list of transform specs (as written in a config)."""
    return {"version": TRANSFORMS_FORMAT_VERSION, "transforms": [dict(t) for t in (specs or [])]}


def read_transforms(desc: Any, where: str) -> list[dict[str, Any]]:
    """Transform specs from :func:`describe_transforms` output, or from an unversioned list (files
    written before versioning); a newer version or a malformed entry is one clear error."""
    if isinstance(desc, list):  # before versioning: the bare list
        desc = {"version": 1, "transforms": desc}
    if not isinstance(desc, dict) or not isinstance(desc.get("transforms"), list):
        raise ConfigError(f"{where}: the transforms description must be {{version, transforms: [...]}}, got {desc!r}")
    version = desc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: transforms version must be a positive integer, got {version!r}")
    if version > TRANSFORMS_FORMAT_VERSION:
        raise ConfigError(f"{where}: transforms version {version} was written by a newer ppseg "
                          f"(this one reads up to {TRANSFORMS_FORMAT_VERSION}); upgrade ppseg")
    for i, t in enumerate(desc["transforms"]):
        if not isinstance(t, dict) or not isinstance(t.get("type"), str):
            raise ConfigError(f"{where}: transforms[{i}] must be a mapping with a 'type', got {t!r}")
    return [dict(t) for t in desc["transforms"]]
