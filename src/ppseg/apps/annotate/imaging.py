"""Opening images for ``ppseg annotate``: 8-bit photos, 16-bit/float rasters and DICOM slices,
display windowing (window/level) and the tile pyramid the page draws from.

* :func:`open_image` decodes a file once into an :class:`OpenedImage` that holds the raw pixels:
  ``kind="rgb"`` (8-bit photos, held as ``H x W x 3`` uint8 RGB), ``kind="gray16"`` (16-bit or
  float PNG/TIFF, held raw: uint16 / int16 / float32, one or three channels) or ``kind="dicom"``
  (the first frame of a DICOM file, rescale slope/intercept applied). The pixel limit is checked
  from the header before anything is decoded.
* 16-bit, float and DICOM images are shown through a :class:`Window` (DICOM window width/level):
  :func:`apply_window` maps raw values to uint8 with DICOM's ``LINEAR_EXACT`` function. The
  windowing is applied to what is asked for only (a tile, a region), never to a whole huge image.
* :class:`TilePyramid` serves ``tile_size`` tiles of level ``k`` (the image downsampled by
  ``2**k``); levels are built lazily with ``cv2.INTER_AREA`` from the level above and kept.
* :class:`ImageCache` keeps the last few opened images (and their pyramids) for the server.

Geometry follows ppseg's readers (:func:`ppseg.data.io.read_image`): OpenCV decodes, the EXIF
orientation is applied, so mask coordinates drawn here line up with what training reads.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from ppseg.data.io import IMAGE_SUFFIXES, CapturedStderr, capture_native_stderr
from ppseg.errors import ConfigError, DataError, PPSegError

__all__ = [
    "IMAGE_SUFFIXES_ANNOTATE", "DEFAULT_MAX_PIXELS", "Window", "OpenedImage", "open_image", "apply_window",
    "is_annotate_image", "TilePyramid", "ImageCache",
]

#: the suffixes ``ppseg annotate`` lists as images (lower case): ppseg's photos, TIFF and DICOM.
#: A file without a suffix is not listed (open_image still recognises a DICOM by its preamble).
IMAGE_SUFFIXES_ANNOTATE: tuple[str, ...] = tuple(dict.fromkeys((*IMAGE_SUFFIXES, ".tif", ".tiff", ".dcm")))

#: the default pixel limit (width x height) of :func:`open_image`
DEFAULT_MAX_PIXELS = 400_000_000

Kind = Literal["rgb", "gray16", "dicom"]

_SAMPLE_TARGET = 1 << 20  # about this many values are used for the percentile window
_CAPTURE_MAX_BYTES = 32 << 20  # decoder stderr is captured for files up to this size


def is_annotate_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with one of :data:`IMAGE_SUFFIXES_ANNOTATE`, or a DICOM file
    without a suffix (as scanners write them), known by its ``DICM`` preamble."""
    p = Path(path)
    if p.suffix.lower() in IMAGE_SUFFIXES_ANNOTATE:
        return p.is_file()
    return p.suffix == "" and p.is_file() and _is_dicom(p)


# --------------------------------------------------------------------------------------- window

@dataclass(frozen=True)
class Window:
    """A display window in the DICOM convention: values ``level - width/2 .. level + width/2`` span
    black to white. ``width`` must be a positive finite number, ``level`` a finite one
    (:class:`ConfigError` otherwise)."""

    width: float
    level: float

    def __post_init__(self) -> None:
        for name in ("width", "level"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"window {name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ConfigError(f"window {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.width <= 0:
            raise ConfigError(f"window width must be positive, got {self.width:g}")

    @classmethod
    def from_query(cls, width: str | float | None, level: str | float | None) -> Window | None:
        """The window of the ``?ww=&wl=`` query parameters; ``None`` when both are absent or empty."""
        if width in (None, "") and level in (None, ""):
            return None
        if width in (None, "") or level in (None, ""):
            raise ConfigError("give both ww (window width) and wl (window level), or neither")
        values = []
        for name, value in (("ww", width), ("wl", level)):
            try:
                values.append(float(value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConfigError(f"{name} must be a number, got {value!r}") from None
        return cls(width=values[0], level=values[1])


@functools.lru_cache(maxsize=16)
def _lut16(signed: bool, width: float, level: float) -> np.ndarray:
    """The 65536-entry uint8 lookup table of a window for 16-bit values (indexed by the uint16 view)."""
    idx = np.arange(65536, dtype=np.float64)
    if signed:
        idx[32768:] -= 65536.0  # the uint16 view of int16 -1 is 65535
    return _window_float(idx, width, level)


def _window_float(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """``LINEAR_EXACT`` on a (small) array via a float32 copy; returns uint8. NaN shows black."""
    y = values.astype(np.float32)  # always a copy: the caller's array is never written
    with np.errstate(over="ignore", invalid="ignore"):
        y -= np.float32(level)
        y *= np.float32(255.0 / width)
        y += np.float32(127.5)
        np.clip(y, 0.0, 255.0, out=y)  # +-inf clip to white/black
        if values.dtype.kind == "f":
            y[np.isnan(y)] = 0.0
        np.rint(y, out=y)
    return y.astype(np.uint8)


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Map raw values (any integer or float dtype, any shape) to uint8 display values of the same shape.

    DICOM ``LINEAR_EXACT`` (PS3.3 C.11.2.1.3.2): ``y = ((x - level) / width + 0.5) * 255``, clipped to
    0..255 and rounded: ``level - width/2`` is black, ``level + width/2`` white. 8/16-bit integers go
    through a lookup table (no float copy); other dtypes are converted in blocks of rows, so a large
    array is never copied to float whole. NaN shows black. MONOCHROME1 inversion is not done here
    (:class:`OpenedImage` does it after windowing)."""
    if not isinstance(window, Window):
        raise TypeError(f"window must be a Window, got {type(window).__name__}")
    values = np.asarray(values)
    w, lv = window.width, window.level
    if values.dtype in (np.uint16, np.int16):
        lut = _lut16(values.dtype == np.int16, w, lv)
        return lut[values.view(np.uint16)]
    if values.dtype == np.uint8:
        return _lut16(False, w, lv)[values]
    if values.dtype == np.int8:
        return _lut16(True, w, lv)[values.astype(np.int16).view(np.uint16)]
    if values.dtype.kind not in "iuf":
        raise TypeError(f"cannot window values of dtype {values.dtype}")
    out = np.empty(values.shape, np.uint8)
    if values.ndim == 0 or values.size == 0:
        out[...] = _window_float(np.asarray(values, np.float32).reshape(-1), w, lv).reshape(values.shape)
        return out
    row_elems = max(1, values[0].size)
    step = max(1, (1 << 20) // row_elems)
    for r in range(0, values.shape[0], step):
        out[r:r + step] = _window_float(values[r:r + step], w, lv)
    return out


# --------------------------------------------------------------------------------------- images

class OpenedImage:
    """A decoded image: its raw pixels (:attr:`pixels`, read-only) and how to show them.

    ``kind``: ``"rgb"`` (8-bit, :attr:`pixels` is ``H x W x 3`` uint8 RGB), ``"gray16"`` (16-bit or
    float PNG/TIFF: uint16/int16/float32, ``H x W`` or ``H x W x 3``) or ``"dicom"``. Windowed images
    (:attr:`windowed`: 16-bit, float, grayscale DICOM) have a :attr:`default_window` and a
    :attr:`value_range`; an 8-bit colour DICOM is shown as it is (both ``None``), like a photo.
    """

    def __init__(self, path: Path, kind: Kind, pixels: np.ndarray, *, default_window: Window | None = None,
                 value_range: tuple[float, float] | None = None, invert: bool = False,
                 transfer_syntax: str | None = None) -> None:
        self.path = Path(path)
        self.kind: Kind = kind
        pixels.flags.writeable = False  # shared by threads, tiles and callers: nobody writes
        self.pixels = pixels
        self.height, self.width = int(pixels.shape[0]), int(pixels.shape[1])
        self.default_window = default_window
        self.value_range = value_range
        #: DICOM MONOCHROME1: low values show white (the window is applied first, then inverted)
        self.invert = invert
        self.transfer_syntax = transfer_syntax

    @property
    def windowed(self) -> bool:
        """Whether the display goes through a window (16-bit, float, grayscale DICOM)."""
        return self.default_window is not None

    @property
    def channels(self) -> int:
        return 1 if self.pixels.ndim == 2 else int(self.pixels.shape[2])

    @property
    def nbytes(self) -> int:
        return int(self.pixels.nbytes)

    def __repr__(self) -> str:
        return (f"OpenedImage({str(self.path)!r}, kind={self.kind!r}, {self.width}x{self.height}, "
                f"{self.pixels.dtype}, window={self.default_window})")

    def window_json(self, window: Window | None = None) -> dict | None:
        """``{"width", "level", "min", "max"}`` for the API (``window`` or the default), ``None`` for photos."""
        if not self.windowed:
            return None
        win = window or self.default_window
        lo, hi = self.value_range or (0.0, 0.0)
        return {"width": win.width, "level": win.level, "min": lo, "max": hi}

    def display(self, values: np.ndarray, window: Window | None = None) -> np.ndarray:
        """Raw values of this image (a crop or a pyramid level) as uint8 for display: ``H x W`` for
        grayscale, ``H x W x 3`` RGB for colour. Photos pass through; ``window`` is then ignored."""
        if not self.windowed:
            return values
        out = apply_window(values, window or self.default_window)
        if self.invert:
            np.subtract(255, out, out=out)
        return out

    def rgb(self, window: Window | None = None) -> np.ndarray:
        """The whole image as ``H x W x 3`` uint8 RGB (display and the click model). For a photo this is
        :attr:`pixels` itself (read-only, no copy); a windowed image is rendered through ``window``
        (default: :attr:`default_window`) into a new array."""
        return _as_rgb3(self.display(self.pixels, window))

    def region(self, x0: int, y0: int, x1: int, y1: int, window: Window | None = None) -> np.ndarray:
        """The crop ``x0 <= x < x1, y0 <= y < y1`` (clipped to the image) as a new ``h x w x 3`` uint8
        RGB array; only the crop is converted. ``ValueError`` when nothing of it is inside the image."""
        try:
            xa, ya, xb, yb = (int(v) for v in (x0, y0, x1, y1))
        except (TypeError, ValueError):
            raise ValueError(f"region bounds must be integers, got {(x0, y0, x1, y1)!r}") from None
        xa, xb = max(0, xa), min(self.width, xb)
        ya, yb = max(0, ya), min(self.height, yb)
        if xb <= xa or yb <= ya:
            raise ValueError(f"region {(x0, y0, x1, y1)} is outside the {self.width}x{self.height} image")
        crop = self.pixels[ya:yb, xa:xb]
        out = _as_rgb3(self.display(crop, window))
        return np.ascontiguousarray(out) if out is not crop else crop.copy()


def _as_rgb3(values: np.ndarray) -> np.ndarray:
    if values.ndim == 2:
        return cv2.cvtColor(values, cv2.COLOR_GRAY2RGB)
    return values


def _fail(path: Path, reason: str) -> DataError:
    return DataError(f"cannot open image '{path}': {reason}")


def _amount(n: int) -> str:
    return f"{n / 1e6:.0f} megapixels" if n >= 10**6 else f"{n:,} pixels"


def _check_pixels(path: Path, w: int, h: int, max_pixels: int) -> None:
    if w <= 0 or h <= 0:
        raise _fail(path, f"it has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise _fail(path, f"{w}x{h} ({_amount(w * h)}) is over the limit of {_amount(max_pixels)}; "
                          "shrink or tile it first")


_pil_header_lock = threading.Lock()


def _header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the header (PIL opens lazily, nothing is decoded); ``None`` if PIL cannot
    read the header (OpenCV may still decode the file; the size is then checked after decoding)."""
    with _pil_header_lock:  # PIL's own bomb limit is a module global: off only while we peek
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with Image.open(os.fspath(path)) as im:
                return tuple(int(v) for v in im.size)  # type: ignore[return-value]
        except Exception:  # noqa: BLE001 - not PIL-readable: the decoder says what is wrong
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _utf8(path: Path) -> bool:
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:  # a name with undecodable bytes (surrogate escapes)
        return False
    return True


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def open_image(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> OpenedImage:
    """Decode an image file once (see the module docstring). Every problem with the file is a
    :class:`~ppseg.errors.DataError` (a ``PPSegError``) naming it: missing, empty, over ``max_pixels``
    (checked from the header, before decoding), unreadable or corrupt, an unsupported pixel format,
    a DICOM without pydicom or with a compression pydicom cannot decode."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "no such file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise _fail(p, exc.strerror or str(exc)) from None
    if size == 0:
        raise _fail(p, "the file is empty")
    if _is_dicom(p):
        return _open_dicom(p, max_pixels)
    return _open_raster(p, max_pixels, size)


def _open_raster(p: Path, max_pixels: int, file_size: int) -> OpenedImage:
    hdr = _header_size(p)
    if hdr is not None:
        _check_pixels(p, hdr[0], hdr[1], max_pixels)
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # like read_image (IMREAD_COLOR) the EXIF orientation
    img, err = None, ""                                 # is applied; unlike it, the bit depth is kept
    # the decoders' stderr (libpng warnings) is captured for files that decode in a moment; a big file
    # decodes for seconds, and a capture that long would swallow the server's own log lines meanwhile
    quiet = capture_native_stderr() if file_size <= _CAPTURE_MAX_BYTES else contextlib.nullcontext(CapturedStderr())
    with quiet as native:
        try:
            if os.name == "posix" and _utf8(p):  # straight from the file: no second copy of a huge file in memory
                img = cv2.imread(os.fspath(p), flags)
            if img is None:  # other paths (Windows, undecodable names) or imread refused: decode from memory
                try:
                    data = np.fromfile(os.fspath(p), dtype=np.uint8)  # non-ASCII paths work
                except OSError as exc:
                    raise _fail(p, exc.strerror or str(exc)) from None
                img = cv2.imdecode(data, flags)
                del data
        except cv2.error as e:
            img, err = None, str(e).strip().splitlines()[-1][:200]
    if img is None:
        detail = err or native.last_line()
        raise _fail(p, "not a decodable image file" + (f" ({detail})" if detail else ""))
    _check_pixels(p, img.shape[1], img.shape[0], max_pixels)
    if img.ndim == 3 and img.shape[2] == 4:  # not expected with ANYCOLOR; drop alpha all the same
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.ndim == 3 and img.shape[2] not in (1, 3):
        raise _fail(p, f"unsupported number of channels ({img.shape[2]})")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype == np.uint8:
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        else:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second copy of a huge image
        return OpenedImage(p, "rgb", img)
    if img.ndim == 3:
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
    img = _compact(img, p)
    lo, hi = _value_range(img, p)
    return OpenedImage(p, "gray16", img, default_window=_percentile_window(img, lo, hi), value_range=(lo, hi))


def _compact(values: np.ndarray, path: Path) -> np.ndarray:
    """Raw values in a dtype the pyramid (cv2.resize) and windowing handle: uint16, int16 or float32."""
    if values.dtype in (np.uint16, np.int16, np.float32):
        return values
    if values.dtype == np.int8:
        return values.astype(np.int16)
    if values.dtype == np.uint8:
        return values.astype(np.uint16)
    if values.dtype.kind in "iu":
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if 0 <= lo and hi <= 65535:
            return values.astype(np.uint16)
        if -32768 <= lo and hi <= 32767:
            return values.astype(np.int16)
        return values.astype(np.float32)
    if values.dtype.kind == "f":
        return values.astype(np.float32)
    raise _fail(path, f"unsupported pixel type {values.dtype}")


def _value_range(values: np.ndarray, path: Path) -> tuple[float, float]:
    flat = values.reshape(-1)
    if values.dtype.kind != "f":
        return float(flat.min()), float(flat.max())
    lo, hi = float(np.fmin.reduce(flat)), float(np.fmax.reduce(flat))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = flat[np.isfinite(flat)]
        if finite.size == 0:
            raise _fail(path, "it holds no finite pixel values")
        lo, hi = float(finite.min()), float(finite.max())
    return lo, hi


def _percentile_window(values: np.ndarray, lo: float, hi: float) -> Window:
    """The window from the 1st to the 99th percentile of (a strided subsample of) the values; the full
    value range when those coincide."""
    n = values.shape[0] * values.shape[1]
    step = max(1, math.ceil(math.sqrt(n / _SAMPLE_TARGET)))
    sample = values[::step, ::step].reshape(-1)
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
    p1, p99 = (float(v) for v in np.percentile(sample, [1, 99])) if sample.size else (lo, hi)
    if not p99 > p1:
        p1, p99 = lo, hi
    if not p99 > p1:
        return Window(width=1.0, level=p1)
    return Window(width=p99 - p1, level=(p1 + p99) / 2)


# ---------------------------------------------------------------------------------------- DICOM

def _first(value: object) -> float | None:
    """The first value of a (possibly multi-valued) DICOM number, or ``None``."""
    if value is None:
        return None
    try:
        if not isinstance(value, (str, bytes)) and hasattr(value, "__len__") and hasattr(value, "__getitem__"):
            if len(value) == 0:
                return None
            value = value[0]
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError):
        return None
    return out if math.isfinite(out) else None


def _open_dicom(p: Path, max_pixels: int) -> OpenedImage:
    try:
        import pydicom
    except ImportError:
        raise _fail(p, 'reading DICOM needs pydicom: pip install "ppseg[annotate]"') from None
    try:
        ds = pydicom.dcmread(os.fspath(p), force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds for a broken file
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise _fail(p, f"not a readable DICOM file ({detail})") from None
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if "Rows" not in ds and "SOPClassUID" not in ds:
            raise _fail(p, "not a DICOM file (no DICOM header or image found)")
        raise _fail(p, "the DICOM file holds no image (no pixel data)")
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not isinstance(rows, int) or not isinstance(cols, int):
        raise _fail(p, "the DICOM file does not give its image size (Rows, Columns)")
    _check_pixels(p, cols, rows, max_pixels)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_text = f"{ts.name} ({ts})" if ts is not None and getattr(ts, "name", "") and ts.name != str(ts) else str(ts)
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        frames = 1
    try:
        if frames > 1 and hasattr(ds, "pixel_array_options"):
            ds.pixel_array_options(index=0)  # decode the first frame only
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing plugin, corrupt stream, bad attributes
        msg = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if ts is not None and getattr(ts, "is_compressed", False):
            raise _fail(p, f"cannot decode its pixel data, compressed as {ts_text}: {msg} (pydicom needs a "
                           "decoder plugin for it, e.g. pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg)") \
                from None
        raise _fail(p, f"cannot decode its pixel data ({msg})") from None
    arr = np.asarray(arr)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if frames > 1 and arr.ndim == (4 if samples > 1 else 3):  # an older pydicom decoded every frame
        arr = arr[0]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric == "PALETTE COLOR":
        try:
            from pydicom.pixels import apply_color_lut
            arr = np.asarray(apply_color_lut(arr, ds))
        except Exception as exc:  # noqa: BLE001
            raise _fail(p, f"cannot apply its palette colour table ({exc})") from None
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise _fail(p, f"unsupported DICOM pixel layout {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    arr = np.ascontiguousarray(arr)
    _check_pixels(p, arr.shape[1], arr.shape[0], max_pixels)

    if arr.ndim == 3:  # colour (RGB; pydicom converts YBR to RGB)
        if arr.dtype == np.uint8:
            return OpenedImage(p, "dicom", arr, transfer_syntax=str(ts) if ts else None)
        arr = _compact(arr, p)
        lo, hi = _value_range(arr, p)
        return OpenedImage(p, "dicom", arr, default_window=_percentile_window(arr, lo, hi), value_range=(lo, hi),
                           transfer_syntax=str(ts) if ts else None)

    slope = _first(ds.get("RescaleSlope"))
    intercept = _first(ds.get("RescaleIntercept"))
    slope = 1.0 if slope is None else slope
    intercept = 0.0 if intercept is None else intercept
    if slope != 1.0 or intercept != 0.0:
        if slope == 1.0 and intercept == int(intercept) and arr.dtype.kind in "iu":
            arr = _compact(arr.astype(np.int32) + int(intercept), p)
        else:
            out = arr.astype(np.float32)
            out *= np.float32(slope)
            out += np.float32(intercept)
            arr = out
    else:
        arr = _compact(arr, p)
    lo, hi = _value_range(arr, p)
    width, center = _first(ds.get("WindowWidth")), _first(ds.get("WindowCenter"))
    if width is not None and center is not None and width > 0:
        window = Window(width=width, level=center)
    else:
        window = _percentile_window(arr, lo, hi)
    return OpenedImage(p, "dicom", arr, default_window=window, value_range=(lo, hi),
                       invert=photometric == "MONOCHROME1", transfer_syntax=str(ts) if ts else None)


# ----------------------------------------------------------------------------------------- tiles

class TilePyramid:
    """Tiles of an :class:`OpenedImage` at levels ``0..levels-1``; level ``k`` is the image downsampled
    by ``2**k`` (size ``ceil(w / 2**k) x ceil(h / 2**k)``), the last level fits in one tile.

    Levels hold raw values (uint8 RGB for photos; uint16/int16/float32 for windowed images), are built
    on first use from the level above with ``cv2.INTER_AREA`` and kept. A tile is cut from its level,
    windowed (windowed images only: the tile, never the level) and encoded:

    * photos: PNG (lossless, OpenCV's fast default: zlib level 1, RLE) at level 0, JPEG quality 90
      with 4:4:4 chroma (no colour bleeding at label edges) at coarser levels;
    * windowed images: PNG (grayscale PNGs are small and fast; no JPEG artefacts on medical images).
    """

    TILE = 512
    JPEG_QUALITY = 90
    #: photos: level 0 as lossless PNG (pixel-exact at full resolution); False: JPEG at every level
    LOSSLESS_LEVEL0 = True

    def __init__(self, image: OpenedImage, tile_size: int = TILE) -> None:
        if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 16:
            raise ConfigError(f"tile_size must be an integer >= 16, got {tile_size!r}")
        self.image = image
        self.tile_size = tile_size
        w, h = image.width, image.height
        sizes = [(w, h)]
        while max(w, h) > tile_size:
            w, h = (w + 1) // 2, (h + 1) // 2
            sizes.append((w, h))
        self._sizes = sizes
        self.levels = len(sizes)
        self._arrays: dict[int, np.ndarray] = {0: image.pixels}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TilePyramid({self.image.path.name!r}, levels={self.levels}, tile_size={self.tile_size})"

    def _check_level(self, level: int) -> int:
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level < self.levels:
            raise PPSegError(f"no tile level {level!r} in '{self.image.path.name}' (levels 0..{self.levels - 1})")
        return int(level)

    def level_size(self, level: int) -> tuple[int, int]:
        """``(width, height)`` of ``level``."""
        return self._sizes[self._check_level(level)]

    def tile_count(self, level: int) -> tuple[int, int]:
        """``(columns, rows)`` of tiles at ``level``."""
        w, h = self.level_size(level)
        return -(-w // self.tile_size), -(-h // self.tile_size)

    @property
    def nbytes(self) -> int:
        """Bytes held by the built levels (level 0 is the image's own pixels)."""
        return sum(int(a.nbytes) for a in list(self._arrays.values()))

    def level_array(self, level: int) -> np.ndarray:
        """The raw (read-only) array of ``level``, built now if needed."""
        level = self._check_level(level)
        arr = self._arrays.get(level)
        if arr is not None:
            return arr
        with self._lock:
            for k in range(1, level + 1):
                if k not in self._arrays:
                    down = cv2.resize(self._arrays[k - 1], self._sizes[k], interpolation=cv2.INTER_AREA)
                    down.flags.writeable = False
                    self._arrays[k] = down
            return self._arrays[level]

    def tile_array(self, level: int, tx: int, ty: int, window: Window | None = None) -> np.ndarray:
        """The display pixels (uint8, ``h x w`` grayscale or ``h x w x 3`` RGB) of one tile."""
        cols, rows = self.tile_count(level)
        for name, v, n in (("tx", tx, cols), ("ty", ty, rows)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < n:
                raise PPSegError(f"no tile {name}={v!r} at level {level} of '{self.image.path.name}' "
                                 f"(0..{n - 1})")
        t = self.tile_size
        arr = self.level_array(level)
        crop = arr[ty * t:(ty + 1) * t, tx * t:(tx + 1) * t]
        return self.image.display(crop, window)

    def tile(self, level: int, tx: int, ty: int, window: Window | None = None) -> tuple[bytes, str]:
        """One encoded tile and its media type (``image/png`` or ``image/jpeg``); a :class:`PPSegError`
        (the server's 404) for a level, ``tx`` or ``ty`` out of range."""
        pix = self.tile_array(level, tx, ty, window)
        if pix.ndim == 3:
            pix = cv2.cvtColor(pix, cv2.COLOR_RGB2BGR)
        if not self.image.windowed and (level > 0 or not self.LOSSLESS_LEVEL0):
            params = [cv2.IMWRITE_JPEG_QUALITY, self.JPEG_QUALITY,
                      cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
            ok, buf = cv2.imencode(".jpg", pix, params)
            media = "image/jpeg"
        else:
            ok, buf = cv2.imencode(".png", pix)
            media = "image/png"
        if not ok:  # pragma: no cover - OpenCV encodes uint8 1/3-channel arrays
            raise PPSegError(f"cannot encode tile {level}/{tx}/{ty} of '{self.image.path.name}'")
        return buf.tobytes(), media


# ----------------------------------------------------------------------------------------- cache

class ImageCache:
    """A thread-safe LRU of opened images and their pyramids, keyed by absolute path.

    ``get(path)`` opens the file on a miss (one thread opens a given file; others asking for it wait
    for that result) and reopens it when its size or modification time changed. At most
    ``max_items`` entries are kept, and, with ``max_bytes``, older entries are dropped while the kept
    pixels (images and built levels) exceed it (the newest entry always stays). Open errors are not
    cached: they are raised to every caller."""

    def __init__(self, max_items: int = 3, *, max_pixels: int = DEFAULT_MAX_PIXELS, tile_size: int = TilePyramid.TILE,
                 max_bytes: int | None = None) -> None:
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ConfigError(f"max_items must be a positive integer, got {max_items!r}")
        self.max_items = max_items
        self.max_pixels = max_pixels
        self.tile_size = tile_size
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[tuple[int, int], OpenedImage, TilePyramid]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @staticmethod
    def _key(path: str | os.PathLike) -> str:
        return os.path.abspath(os.fspath(path))

    @staticmethod
    def _stamp(key: str) -> tuple[int, int]:
        try:
            st = os.stat(key)
        except OSError:
            return (-1, -1)
        return (st.st_mtime_ns, st.st_size)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return self._key(path) in self._entries  # type: ignore[arg-type]

    def _lookup(self, key: str, stamp: tuple[int, int]) -> tuple[OpenedImage, TilePyramid] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] != stamp:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1], entry[2]

    def get(self, path: str | os.PathLike) -> tuple[OpenedImage, TilePyramid]:
        """``(image, pyramid)`` of ``path``; raises :func:`open_image`'s errors."""
        key = self._key(path)
        stamp = self._stamp(key)
        with self._lock:
            hit = self._lookup(key, stamp)
            if hit is not None:
                return hit
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                hit = self._lookup(key, stamp)
                if hit is not None:
                    return hit
            try:
                image = open_image(key, max_pixels=self.max_pixels)
                pyramid = TilePyramid(image, self.tile_size)
            except BaseException:
                with self._lock:
                    self._loading.pop(key, None)
                raise
            with self._lock:
                self._entries[key] = (stamp, image, pyramid)
                self._entries.move_to_end(key)
                self._evict()
                self._loading.pop(key, None)
            return image, pyramid

    def _evict(self) -> None:
        while len(self._entries) > self.max_items:
            self._entries.popitem(last=False)
        if self.max_bytes is not None:
            while len(self._entries) > 1 and sum(e[2].nbytes for e in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)

    def drop(self, path: str | os.PathLike) -> None:
        """Forget ``path`` (it is reopened on the next ``get``)."""
        with self._lock:
            self._entries.pop(self._key(path), None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
