"""Reading and writing images and label maps.

Images are always returned as uint8 ``H x W x 3`` **RGB** arrays (OpenCV decodes
BGR; we convert), label maps as 2-D integer arrays read with PIL so that
palette PNGs give their class indices rather than colours. Every failure is
raised as :class:`ppseg.errors.DataError` with a message naming the file.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ppseg.errors import DataError
from ppseg.fileio import atomic_open

__all__ = ["IMAGE_SUFFIXES", "list_images", "collect_images", "read_image", "read_image_quiet", "read_label",
           "read_label_raw", "write_image", "write_png_atomic", "capture_native_stderr"]

PathLike = str | os.PathLike

#: the image file suffixes every command reads (lower case)
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    p = Path(path)
    return p.suffix.lower() in suffixes and p.is_file()


def list_images(folder: PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted); :class:`DataError` if it is not a folder."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    sfx = tuple(s.lower() for s in suffixes)
    return sorted(p for p in root.rglob("*") if is_image_file(p, sfx))


def collect_images(spec: str, what: str = "--input") -> list[Path]:
    """Image files named by a file, a folder (recursive) or a glob pattern, sorted.

    ``what`` names the option in the error (``--input``)."""
    import glob

    path = Path(spec)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise DataError(f"{what} {spec}: the directory holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if is_image_file(p))
        if not files:
            raise DataError(f"{what} {spec}: the pattern matches no image files")
        return files
    raise DataError(f"{what} {spec}: no such file or directory")


def _read_bytes(path: PathLike, what: str) -> np.ndarray:
    """Read a whole file as a uint8 buffer (works for non-ASCII paths)."""
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise DataError(f"cannot read {what} '{p}': no such file")
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read {what} '{p}': {exc.strerror or exc}") from exc
    if data.size == 0:
        raise DataError(f"cannot read {what} '{p}': the file is empty")
    return data


#: the largest image (width x height) the readers decode; ``PPSEG_MAX_IMAGE_PIXELS`` raises it
DEFAULT_MAX_IMAGE_PIXELS = 128_000_000


def max_image_pixels() -> int:
    """The pixel limit of the image readers: ``PPSEG_MAX_IMAGE_PIXELS`` or 128 megapixels."""
    value = os.environ.get("PPSEG_MAX_IMAGE_PIXELS", "")
    if not value:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        n = int(value)
    except ValueError:
        raise DataError(f"PPSEG_MAX_IMAGE_PIXELS must be a whole number of pixels, got {value!r}") from None
    if n < 1:
        raise DataError(f"PPSEG_MAX_IMAGE_PIXELS must be positive, got {n}")
    return n


class _no_pil_bomb_check:
    """PIL's own decompression-bomb limit off while decoding (ours, :func:`max_image_pixels`, was checked)."""

    def __enter__(self) -> None:
        self._saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None

    def __exit__(self, *exc: object) -> None:
        Image.MAX_IMAGE_PIXELS = self._saved


def _check_size(path: PathLike, what: str) -> None:
    """Refuse an image larger than :func:`max_image_pixels` from its header, before decoding it."""
    limit = max_image_pixels()
    try:
        with _no_pil_bomb_check(), Image.open(os.fspath(path)) as im:  # reads the header only
            w, h = im.size
    except Exception:  # noqa: BLE001 - not a PIL-readable header: the decoder below says what is wrong
        return
    if w * h > limit:
        def amount(n: int) -> str:
            return f"{n / 1e6:.0f} megapixels" if n >= 10**6 else f"{n:,} pixels"

        raise DataError(f"cannot read {what} '{os.fspath(path)}': {w}x{h} ({amount(w * h)}) is over the limit "
                        f"of {amount(limit)}; shrink it, or raise the limit with PPSEG_MAX_IMAGE_PIXELS={w * h}")


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as a uint8 ``H x W x 3`` RGB array.

    Grayscale images are expanded to three channels, an alpha channel is
    dropped, 16-bit images are reduced to 8 bits and the EXIF orientation is
    applied (OpenCV ``IMREAD_COLOR`` semantics, as in PaddleSeg).
    """
    data = _read_bytes(path, "image")
    _check_size(path, "image")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise DataError(f"cannot read image '{os.fspath(path)}': OpenCV cannot decode it "
                        f"({str(e).strip().splitlines()[-1][:200]})") from None
    if img is None:
        raise DataError(f"cannot read image '{os.fspath(path)}': not a decodable image file")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class CapturedStderr:
    """What C libraries wrote to file descriptor 2 inside :func:`capture_native_stderr` (``text``, at most 8 KiB)."""

    text: str = ""

    def last_line(self, limit: int = 200) -> str:
        """The last non-empty line (a decoder's error comes last), cut to ``limit`` characters."""
        lines = [ln.strip() for ln in self.text.splitlines() if ln.strip()]
        return lines[-1][:limit] if lines else ""


_native_stderr_lock = threading.Lock()


@contextmanager
def capture_native_stderr() -> Iterator[CapturedStderr]:
    """Redirect file descriptor 2 to a temp file around a native call (an image decode, opening a
    video), so that libpng / libjpeg / ffmpeg / OpenCV warnings do not land on the terminal before
    ppseg's own one-line error; the text is in ``.text`` afterwards (use it in the error, or drop it).

    Only for short calls made from one thread: while the block runs, everything written to fd 2
    goes to the capture (Python's ``sys.stderr`` is flushed first). One capture at a time per
    process: a thread that finds another capture active, a closed fd 2 or no temp folder runs
    its block without capturing (its output is then not hidden, never lost).
    """
    box = CapturedStderr()
    if not _native_stderr_lock.acquire(blocking=False):
        yield box
        return
    try:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):  # pragma: no cover - no usable sys.stderr
            pass
        try:
            saved = os.dup(2)
        except OSError:  # fd 2 closed (a daemon): nothing to hide
            saved = -1
        tmp = None
        if saved >= 0:
            try:
                tmp = tempfile.TemporaryFile()
                os.dup2(tmp.fileno(), 2)
            except OSError:  # pragma: no cover - no writable temp folder
                if tmp is not None:
                    tmp.close()
                tmp = None
        try:
            yield box
        finally:
            if saved >= 0:
                if tmp is not None:
                    os.dup2(saved, 2)
                os.close(saved)
            if tmp is not None:
                try:
                    tmp.seek(0)
                    box.text = tmp.read(8192).decode("utf-8", "replace")
                finally:
                    tmp.close()
    finally:
        _native_stderr_lock.release()


def read_image_quiet(path: PathLike) -> np.ndarray:
    """:func:`read_image` with the decoders' own stderr output captured (:func:`capture_native_stderr`):
    dropped when the image decodes (libpng's "iCCP: known incorrect sRGB profile"...), added to the
    :class:`DataError` when it does not (``(libpng error: IDAT: invalid distance too far back)``)."""
    with capture_native_stderr() as native:
        try:
            return read_image(path)
        except DataError as e:
            error = e
    detail = native.last_line()
    if detail and detail not in str(error):
        raise DataError(f"{error} ({detail})") from None
    raise error


def read_label_raw(path: PathLike) -> tuple[np.ndarray, str]:
    """Read a label file with PIL and return ``(array, pil_mode)`` unchanged.

    Palette (``P``) images give their indices; ``RGB``/``RGBA`` images give an
    ``H x W x C`` array. Used by :func:`read_label` and by check-data.
    """
    p = os.fspath(path)
    _read_bytes(p, "label")  # exists, not empty (a clear message)
    _check_size(p, "label")  # not over the pixel limit
    try:
        with _no_pil_bomb_check(), Image.open(p) as im:
            im.load()
            mode = im.mode
            if mode == "1":
                arr = np.asarray(im.convert("L"), dtype=np.uint8) // 255
            elif mode in ("I;16", "I;16B", "I;16L"):
                arr = np.asarray(im).astype(np.int32)
            else:
                arr = np.asarray(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read label '{p}': not a decodable image file ({exc})") from exc
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"cannot read label '{p}': it holds non-integer values")
        arr = arr.astype(np.int32)
    return arr, mode


def read_label(path: PathLike, *, allow_rgb: bool = False) -> np.ndarray:
    """Read a label map as a 2-D integer array of class indices.

    A colour label whose channels are all equal is reduced to one channel. A
    real colour label (channels differ) raises :class:`DataError` suggesting a
    conversion to indices, unless ``allow_rgb`` is true, in which case the raw
    ``H x W x 3`` array is returned (for check-data).
    """
    arr, mode = read_label_raw(path)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 3:
        raise DataError(f"cannot read label '{os.fspath(path)}': unexpected shape {arr.shape}")
    colour = arr[..., :3]
    if colour.shape[2] == 1 or (
        np.array_equal(colour[..., 0], colour[..., 1 % colour.shape[2]])
        and np.array_equal(colour[..., 0], colour[..., 2 % colour.shape[2]])
    ):
        return np.ascontiguousarray(colour[..., 0])
    if allow_rgb:
        return colour
    raise DataError(
        f"label '{os.fspath(path)}' is a colour ({mode}) image, not a map of class indices: "
        "convert each colour to its class id and save single-channel (or palette) PNGs "
        "(run `ppseg check-data` to list the colours)"
    )


def write_png_atomic(
    path: PathLike, array: np.ndarray, *, palette: np.ndarray | None = None
) -> None:
    """Write ``array`` as a PNG atomically (temp file in the same folder + ``os.replace``).

    2-D arrays are written as 8-bit grayscale when values fit in 0..255 (or as
    a palette PNG when ``palette`` — an ``N x 3`` uint8 array — is given), else
    as 16-bit; ``H x W x 3`` uint8 arrays are written as RGB.
    """
    p = Path(path)
    arr = np.asarray(array)
    if arr.ndim == 2:
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"cannot write '{p}': values outside 0..65535")
        if arr.size == 0 or arr.max() <= 255:
            im = Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))
            if palette is not None:
                pal = np.zeros((256, 3), np.uint8)
                pal_in = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
                pal[: len(pal_in)] = pal_in
                im.putpalette(pal.ravel().tolist())  # turns the L image into P
        else:
            im = Image.fromarray(arr.astype(np.uint16))
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        im = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    else:
        raise DataError(f"cannot write '{p}': unsupported array shape {arr.shape}")
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(p, fsync=False) as fh:
        im.save(fh, format="PNG")


def write_image(path: PathLike, image: np.ndarray, *, atomic: bool = True) -> None:
    """Write an RGB (``H x W x 3``), RGBA or single-channel uint8 array; the format follows the suffix.

    Encoded in memory first, then written through a temp file and renamed (``atomic``), so a
    failure never leaves half a file; any problem is a :class:`DataError` naming ``path``."""
    p = Path(path)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA)
    try:
        ok, buf = cv2.imencode(p.suffix.lower() or ".png", arr)
    except cv2.error as e:
        raise DataError(f"cannot write '{p}': {str(e).strip().splitlines()[-1][:200]}") from None
    if not ok:
        raise DataError(f"cannot write '{p}': OpenCV cannot encode a {arr.shape} {arr.dtype} image as '{p.suffix}'")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if atomic:
            with atomic_open(p, fsync=False) as fh:
                fh.write(buf.tobytes())
        else:
            p.write_bytes(buf.tobytes())
    except OSError as e:
        raise DataError(f"cannot write '{p}': {e.strerror or e}") from None
