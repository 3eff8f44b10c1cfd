"""The sample contract: an image plus named, typed targets, and a record of every geometric op.

Every task hands its transforms a :class:`Sample`:

* ``image``: ``H x W x C`` array (float32 0..255 in training; uint8 works too),
* ``targets``: named :class:`Target` s, each of a :class:`Kind` that fixes how geometry acts on it:

  ============  =====================================  ==========================  =====================
  kind          data                                   resize / rotate             pad value
  ============  =====================================  ==========================  =====================
  ``image``     ``H x W (x C)`` (foreground, bg)       the transform's interp      the image pad value
  ``mask``      ``H x W`` integer ids (label, trimap)  nearest                     the label pad value
  ``alpha``     ``H x W`` float 0..1 (or uint8)        bilinear                    0
  ``points``    ``N x 2+`` ``(y, x, extra...)``        coordinates mapped          --
  ``boxes``     ``N x 4+`` ``(x0, y0, x1, y1, ...)``   corners mapped              --
  ============  =====================================  ==========================  =====================

  A target may set its own ``pad_value`` (e.g. a trimap padded as "unknown").
* ``ops``: every geometric operation applied so far (:class:`Resize`, :class:`Pad`,
  :class:`Crop`, :class:`Flip`, :class:`Affine`), in order. Each op maps points forward and
  back and inverts arrays and tensors, so predictions go back to the original image
  (:func:`invert_tensor`), clicks follow crops and flips (:func:`map_points`), and zoom-in
  crops have an exact inverse (:func:`unmap_points`).
* ``original``: targets kept at the original image size (evaluation compares with these).
* ``meta``: paths, dataset index, augmentation seed.

Transforms are written once per kind through the methods :meth:`Sample.resize`,
:meth:`Sample.pad`, :meth:`Sample.crop`, :meth:`Sample.flip` and :meth:`Sample.warp_affine`,
never once per key.

Coordinates: pixel ``i`` covers the continuous interval ``[i, i + 1)``. Points are pixel
coordinates (the centre of pixel ``(r, c)`` is the point ``(r, c)``), boxes are continuous
edges; resizes follow the half-pixel rule of OpenCV and ``F.interpolate(align_corners=False)``.

Only numpy and OpenCV are needed here (the torch-free deploy path uses it); torch is imported
only by :func:`invert_tensor`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import cv2
import numpy as np

__all__ = ["Kind", "Target", "Sample", "GeomOp", "Resize", "Pad", "Crop", "Flip", "Affine",
           "map_points", "unmap_points", "invert_array", "invert_tensor", "op_from_dict", "ops_to_dicts",
           "ops_from_dicts"]


class Kind(str, Enum):
    """What a target is; fixes its interpolation, pad value and how geometry acts on it."""

    IMAGE = "image"
    MASK = "mask"
    ALPHA = "alpha"
    POINTS = "points"
    BOXES = "boxes"

    @property
    def is_raster(self) -> bool:
        return self in (Kind.IMAGE, Kind.MASK, Kind.ALPHA)


@dataclass
class Target:
    """One named target: its kind, its data and (optionally) its own pad value."""

    kind: Kind
    data: np.ndarray
    pad_value: float | None = None

    def __post_init__(self) -> None:
        self.kind = Kind(self.kind)
        arr = np.asarray(self.data)
        if self.kind.is_raster and arr.ndim not in (2, 3):
            raise ValueError(f"a {self.kind.value} target must be H x W (x C), got shape {arr.shape}")
        if self.kind is Kind.POINTS and (arr.ndim != 2 or arr.shape[1] < 2):
            raise ValueError(f"a points target must be N x 2+ (y, x, ...), got shape {arr.shape}")
        if self.kind is Kind.BOXES and (arr.ndim != 2 or arr.shape[1] < 4):
            raise ValueError(f"a boxes target must be N x 4+ (x0, y0, x1, y1, ...), got shape {arr.shape}")
        self.data = arr


# =============================================================================== raster primitives
def _cv_mask(mask: np.ndarray) -> np.ndarray:
    """Give OpenCV an integer dtype it handles exactly (int64 -> int32)."""
    if mask.dtype in (np.uint8, np.uint16, np.int16, np.int32):
        return mask
    return mask.astype(np.int32)


def _resize_raster(arr: np.ndarray, kind: Kind, size_wh: tuple[int, int], interp: int) -> np.ndarray:
    if kind is Kind.MASK:
        return cv2.resize(_cv_mask(arr), size_wh, interpolation=cv2.INTER_NEAREST).astype(arr.dtype, copy=False)
    if kind is Kind.ALPHA:
        interp = cv2.INTER_LINEAR
    return cv2.resize(arr, size_wh, interpolation=interp)


def _warp_mask_dtype(mask: np.ndarray, value: float) -> np.ndarray:
    """The mask as OpenCV should warp it: uint8 when its values and the border value fit.

    OpenCV (5.x) breaks exact half-pixel ties of a nearest-neighbour ``warpAffine``
    differently for 8/16-bit and 32-bit masks; PaddleSeg warps the uint8 label it read, so a
    mask that fits (ids and ignore 255) is warped as uint8 to land on the same pixels.
    """
    if mask.dtype != np.uint8 and mask.size and float(value).is_integer() and 0 <= value <= 255:
        lo, hi = mask.min(), mask.max()
        if 0 <= lo and hi <= 255:
            return mask.astype(np.uint8)
    return _cv_mask(mask)


def _warp_raster(arr: np.ndarray, kind: Kind, m: np.ndarray, size_wh: tuple[int, int], interp: int,
                 value: float) -> np.ndarray:
    if kind is Kind.MASK:
        out = cv2.warpAffine(_warp_mask_dtype(arr, value), m, size_wh, flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=value)
        return out.astype(arr.dtype, copy=False)
    channels = arr.shape[2] if arr.ndim == 3 else 1
    return cv2.warpAffine(arr, m, size_wh, flags=cv2.INTER_LINEAR if kind is Kind.ALPHA else interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(value,) * min(channels, 4))


def _pad_raster(arr: np.ndarray, top: int, bottom: int, left: int, right: int, value: float) -> np.ndarray:
    widths = ((top, bottom), (left, right)) + (((0, 0),) if arr.ndim == 3 else ())
    return np.pad(arr, widths, constant_values=value)


# =============================================================================== geometric ops
class GeomOp:
    """A recorded geometric operation from an ``src_hw`` canvas to a ``dst_hw`` canvas."""

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]

    def points(self, pts: np.ndarray) -> np.ndarray:
        """Map ``(y, x)`` pixel coordinates (first two columns) from source to destination."""
        raise NotImplementedError

    def unpoints(self, pts: np.ndarray) -> np.ndarray:
        """The exact inverse of :meth:`points`."""
        raise NotImplementedError

    def boxes(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``(x0, y0, x1, y1)`` boxes (continuous edges) from source to destination."""
        corners = np.stack([boxes[:, [1, 0]], boxes[:, [3, 0]], boxes[:, [1, 2]], boxes[:, [3, 2]]], axis=1)
        mapped = self.points(corners.reshape(-1, 2) - 0.5).reshape(-1, 4, 2) + 0.5
        out = boxes.astype(np.float64, copy=True)
        out[:, 0], out[:, 1] = mapped[..., 1].min(1), mapped[..., 0].min(1)
        out[:, 2], out[:, 3] = mapped[..., 1].max(1), mapped[..., 0].max(1)
        return out

    def invert_array(self, arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
        """Bring a destination-space raster (``H x W (x C)``) back to the source canvas."""
        raise NotImplementedError

    def invert_tensor(self, t: Any, fill: float = 0.0) -> Any:
        """Bring a destination-space ``[N, C, H, W]`` float tensor back (bilinear where resampling)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": type(self).__name__}
        for k, v in vars(self).items():
            out[k] = np.asarray(v).tolist() if isinstance(v, np.ndarray) else list(v) if isinstance(v, tuple) else v
        return out


def _hw(v: Sequence[int]) -> tuple[int, int]:
    return int(v[0]), int(v[1])


@dataclass(frozen=True)
class Resize(GeomOp):
    """Scale ``src_hw`` to ``dst_hw`` (half-pixel rule)."""

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]

    def _scale(self) -> np.ndarray:
        return np.array([self.dst_hw[0] / self.src_hw[0], self.dst_hw[1] / self.src_hw[1]])

    def points(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, :2] = (out[:, :2] + 0.5) * self._scale() - 0.5
        return out

    def unpoints(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, :2] = (out[:, :2] + 0.5) / self._scale() - 0.5
        return out

    def invert_array(self, arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
        return _resize_raster(arr, kind, (self.src_hw[1], self.src_hw[0]), cv2.INTER_LINEAR)

    def invert_tensor(self, t: Any, fill: float = 0.0) -> Any:
        import torch.nn.functional as F

        return F.interpolate(t, size=self.src_hw, mode="bilinear", align_corners=False)


@dataclass(frozen=True)
class Pad(GeomOp):
    """Add ``top/bottom/left/right`` pixels around ``src_hw``."""

    src_hw: tuple[int, int]
    top: int
    bottom: int
    left: int
    right: int

    @property
    def dst_hw(self) -> tuple[int, int]:  # type: ignore[override]
        return self.src_hw[0] + self.top + self.bottom, self.src_hw[1] + self.left + self.right

    def points(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, 0] += self.top
        out[:, 1] += self.left
        return out

    def unpoints(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, 0] -= self.top
        out[:, 1] -= self.left
        return out

    def invert_array(self, arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
        h, w = self.src_hw
        return arr[self.top:self.top + h, self.left:self.left + w]

    def invert_tensor(self, t: Any, fill: float = 0.0) -> Any:
        h, w = self.src_hw
        return t[..., self.top:self.top + h, self.left:self.left + w]


@dataclass(frozen=True)
class Crop(GeomOp):
    """Keep the ``h x w`` window at ``(y0, x0)`` of ``src_hw``. Inverting fills the rest with ``fill``."""

    src_hw: tuple[int, int]
    y0: int
    x0: int
    h: int
    w: int

    @property
    def dst_hw(self) -> tuple[int, int]:  # type: ignore[override]
        return self.h, self.w

    def points(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, 0] -= self.y0
        out[:, 1] -= self.x0
        return out

    def unpoints(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, 0] += self.y0
        out[:, 1] += self.x0
        return out

    def invert_array(self, arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
        out = np.full(self.src_hw + arr.shape[2:], fill, dtype=arr.dtype)
        out[self.y0:self.y0 + self.h, self.x0:self.x0 + self.w] = arr
        return out

    def invert_tensor(self, t: Any, fill: float = 0.0) -> Any:
        out = t.new_full(tuple(t.shape[:-2]) + self.src_hw, fill)
        out[..., self.y0:self.y0 + self.h, self.x0:self.x0 + self.w] = t
        return out


@dataclass(frozen=True)
class Flip(GeomOp):
    """Mirror ``hw``: ``axis`` 1 left-right, 0 top-bottom."""

    hw: tuple[int, int]
    axis: int

    @property
    def src_hw(self) -> tuple[int, int]:  # type: ignore[override]
        return self.hw

    @property
    def dst_hw(self) -> tuple[int, int]:  # type: ignore[override]
        return self.hw

    def points(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        out[:, self.axis] = self.hw[self.axis] - 1 - out[:, self.axis]
        return out

    unpoints = points

    def invert_array(self, arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
        return np.ascontiguousarray(np.flip(arr, axis=self.axis))

    def invert_tensor(self, t: Any, fill: float = 0.0) -> Any:
        import torch

        return torch.flip(t, dims=[t.ndim - 2 + self.axis])


@dataclass(frozen=True)
class Affine(GeomOp):
    """An OpenCV ``warpAffine`` with ``matrix`` (2 x 3, source pixel -> destination pixel)."""

    src_hw: tuple[int, int]
    dst_hw: tuple[int, int]
    matrix: tuple[tuple[float, float, float], tuple[float, float, float]]

    def _m(self) -> np.ndarray:
        return np.asarray(self.matrix, np.float64)

    def points(self, pts: np.ndarray) -> np.ndarray:
        out = pts.astype(np.float64, copy=True)
        xy1 = np.stack([out[:, 1], out[:, 0], np.ones(len(out))], axis=1)
        xy = xy1 @ self._m().T
        out[:, 0], out[:, 1] = xy[:, 1], xy[:, 0]
        return out

    def unpoints(self, pts: np.ndarray) -> np.ndarray:
        inv = cv2.invertAffineTransform(self._m())
        return Affine(self.dst_hw, self.src_hw, tuple(map(tuple, inv))).points(pts)  # type: ignore[arg-type]

    def invert_array(self, arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
        inv = cv2.invertAffineTransform(self._m())
        return _warp_raster(arr, kind, inv, (self.src_hw[1], self.src_hw[0]), cv2.INTER_LINEAR, fill)

    def invert_tensor(self, t: Any, fill: float = 0.0) -> Any:
        import torch
        import torch.nn.functional as F

        # destination pixel of each source pixel, normalised for grid_sample (align_corners=False)
        h, w = self.src_hw
        dh, dw = t.shape[-2:]
        ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
        dst = self.points(np.stack([ys.ravel(), xs.ravel()], axis=1))
        gx = (dst[:, 1] + 0.5) / dw * 2 - 1
        gy = (dst[:, 0] + 0.5) / dh * 2 - 1
        grid = torch.from_numpy(np.stack([gx, gy], axis=1).reshape(1, h, w, 2)).to(t)
        out = F.grid_sample(t - fill, grid.expand(t.shape[0], -1, -1, -1), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        return out + fill


_OPS: dict[str, type[GeomOp]] = {"Resize": Resize, "Pad": Pad, "Crop": Crop, "Flip": Flip, "Affine": Affine}


def op_from_dict(d: dict[str, Any]) -> GeomOp:
    """Rebuild an op from :meth:`GeomOp.to_dict`."""
    d = dict(d)
    kind = d.pop("op", None)
    if kind not in _OPS:
        raise ValueError(f"unknown geometric op {kind!r}; known: {', '.join(_OPS)}")
    for key in ("src_hw", "dst_hw", "hw"):
        if key in d:
            d[key] = _hw(d[key])
    if "matrix" in d:
        d["matrix"] = tuple(tuple(float(v) for v in row) for row in d["matrix"])
    return _OPS[kind](**d)


def ops_to_dicts(ops: Iterable[GeomOp]) -> list[dict[str, Any]]:
    return [op.to_dict() for op in ops]


def ops_from_dicts(items: Iterable[dict[str, Any]]) -> list[GeomOp]:
    return [op_from_dict(d) for d in items]


def map_points(ops: Sequence[GeomOp], pts: np.ndarray) -> np.ndarray:
    """``(y, x, ...)`` points of the original image -> the transformed image."""
    out = np.asarray(pts, np.float64).reshape(-1, np.asarray(pts).shape[-1] if np.asarray(pts).size else 2)
    for op in ops:
        out = op.points(out)
    return out


def unmap_points(ops: Sequence[GeomOp], pts: np.ndarray) -> np.ndarray:
    """The exact inverse of :func:`map_points`."""
    out = np.asarray(pts, np.float64).reshape(-1, np.asarray(pts).shape[-1] if np.asarray(pts).size else 2)
    for op in reversed(list(ops)):
        out = op.unpoints(out)
    return out


def invert_array(ops: Sequence[GeomOp], arr: np.ndarray, kind: Kind = Kind.IMAGE, fill: float = 0) -> np.ndarray:
    """A raster in the transformed image's space -> the original image's space."""
    for op in reversed(list(ops)):
        arr = op.invert_array(arr, kind, fill)
    return arr


def invert_tensor(ops: Sequence[GeomOp], t: Any, fill: float = 0.0) -> Any:
    """``[N, C, H, W]`` float scores in the transformed space -> the original space (logits: bilinear)."""
    for op in reversed(list(ops)):
        t = op.invert_tensor(t, fill)
    return t


# =============================================================================== the sample
@dataclass
class Sample:
    """An image, its named typed targets, the geometric ops applied so far, and metadata."""

    image: np.ndarray  # H x W x C; C x H x W once a dataset hands it to the loader
    targets: dict[str, Target] = field(default_factory=dict)
    ops: list[GeomOp] = field(default_factory=list)
    original: dict[str, Target] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ access
    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    def get(self, name: str) -> np.ndarray | None:
        """The data of target ``name``, or ``None``."""
        t = self.targets.get(name)
        return None if t is None else t.data

    def set(self, name: str, kind: Kind | str, data: np.ndarray, pad_value: float | None = None) -> Sample:
        self.targets[name] = Target(Kind(kind), data, pad_value)
        return self

    def keep_original(self, name: str, kind: Kind | str, data: np.ndarray) -> Sample:
        """Keep a target at the original image size, untouched by the transforms (evaluation labels)."""
        self.original[name] = Target(Kind(kind), data)
        return self

    def rasters(self) -> Iterable[tuple[str, Target]]:
        return [(n, t) for n, t in self.targets.items() if t.kind.is_raster]

    def _check(self, name: str, t: Target) -> None:
        if t.kind.is_raster and t.data.shape[:2] != self.image.shape[:2]:
            raise ValueError(f"target '{name}' is {t.data.shape[:2]} but the image is {self.image.shape[:2]}")

    def _pad_value(self, t: Target, image_value: float, mask_value: float) -> float:
        if t.pad_value is not None:
            return t.pad_value
        return {Kind.IMAGE: image_value, Kind.MASK: mask_value}.get(t.kind, 0.0)

    def _geometry(self, op: GeomOp) -> None:
        self.ops.append(op)
        for t in self.targets.values():
            if t.kind is Kind.POINTS:
                t.data = op.points(t.data)
            elif t.kind is Kind.BOXES:
                t.data = op.boxes(t.data)

    # ------------------------------------------------------------------ geometry (once per kind)
    def resize(self, size_wh: tuple[int, int], interp: int = cv2.INTER_LINEAR) -> Sample:
        """Resize the image with ``interp`` and every raster target by its kind."""
        src = self.hw
        size_wh = (int(size_wh[0]), int(size_wh[1]))
        for name, t in self.rasters():
            self._check(name, t)
        self.image = cv2.resize(self.image, size_wh, interpolation=interp)
        for _, t in self.rasters():
            t.data = _resize_raster(t.data, t.kind, size_wh, interp)
        self._geometry(Resize(src, (size_wh[1], size_wh[0])))
        return self

    def pad(self, top: int, bottom: int, left: int, right: int, image_value: float, mask_value: float) -> Sample:
        """Pad with constants: the image and image targets with ``image_value``, masks with
        ``mask_value``, alpha with 0 (or each target's own ``pad_value``)."""
        top, bottom, left, right = (max(int(v), 0) for v in (top, bottom, left, right))
        if not (top or bottom or left or right):
            return self
        src = self.hw
        self.image = _pad_raster(self.image, top, bottom, left, right, image_value)
        for _, t in self.rasters():
            t.data = _pad_raster(t.data, top, bottom, left, right, self._pad_value(t, image_value, mask_value))
        self._geometry(Pad(src, top, bottom, left, right))
        return self

    def crop(self, y0: int, x0: int, h: int, w: int, contiguous: bool = True) -> Sample:
        """Keep the ``h x w`` window at ``(y0, x0)``."""
        src = self.hw

        def cut(a: np.ndarray) -> np.ndarray:
            a = a[y0:y0 + h, x0:x0 + w]
            return np.ascontiguousarray(a) if contiguous else a

        self.image = cut(self.image)
        for _, t in self.rasters():
            t.data = cut(t.data)
        self._geometry(Crop(src, int(y0), int(x0), int(h), int(w)))
        return self

    def flip(self, axis: int) -> Sample:
        """Mirror left-right (``axis=1``) or top-bottom (``axis=0``)."""
        src = self.hw
        sl = (slice(None), slice(None, None, -1)) if axis == 1 else (slice(None, None, -1),)
        self.image = np.ascontiguousarray(self.image[sl])
        for _, t in self.rasters():
            t.data = np.ascontiguousarray(t.data[sl])
        self._geometry(Flip(src, int(axis)))
        return self

    def warp_affine(self, m: np.ndarray, size_wh: tuple[int, int], image_value: float, mask_value: float,
                    interp: int = cv2.INTER_LINEAR) -> Sample:
        """``cv2.warpAffine`` the image (``interp``) and every raster target by its kind."""
        src = self.hw
        self.image = cv2.warpAffine(self.image, m, size_wh, flags=interp, borderMode=cv2.BORDER_CONSTANT,
                                    borderValue=(image_value,) * 3)
        for _, t in self.rasters():
            t.data = _warp_raster(t.data, t.kind, m, size_wh, interp, self._pad_value(t, image_value, mask_value))
        self._geometry(Affine(src, (int(size_wh[1]), int(size_wh[0])),
                              tuple(tuple(float(v) for v in row) for row in np.asarray(m))))  # type: ignore[arg-type]
        return self
