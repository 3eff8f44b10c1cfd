"""What an annotation is: labels, objects (a label + a mask) and per-image records; numpy only.

A mask travels and is stored as a **bbox run-length code** (``{"bbox": [x, y, w, h], "counts":
[...]}``): the mask cropped to its bounding box, read row by row, as alternating run lengths
starting with a run of zeros (which may be 0). It is exact, small for the usual blob-like objects,
cheap to decode in the page's JavaScript, and independent of the image size, so a 10000 x 10000
aerial image stores a small building as a small object. The empty mask is ``bbox [0, 0, 0, 0]``
and ``counts []``.

Labels follow PaddleSeg/EISeg: id 0 is the background; objects carry ids 1..255; a label map is
the objects painted in their paint order (later objects over earlier ones).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ...errors import PPSegError

__all__ = ["Label", "AnnotatedObject", "ImageRecord", "encode_mask", "decode_mask", "paste_mask",
           "label_map", "default_color", "parse_labels_txt", "format_labels_txt", "read_labels_file",
           "check_labels", "MAX_LABEL_ID"]

MAX_LABEL_ID = 255
_NAME_RE = re.compile(r"^[^\s\x00-\x1f]{1,64}$")


def default_color(label_id: int) -> tuple[int, int, int]:
    """PaddleSeg's pseudo-colour palette (the VOC bit-interleaving one) for ``label_id``."""
    r = g = b = 0
    c = int(label_id)
    for j in range(8):
        r |= ((c >> 0) & 1) << (7 - j)
        g |= ((c >> 1) & 1) << (7 - j)
        b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
    return r, g, b


@dataclass(frozen=True)
class Label:
    """One class: ``id`` (1..255), a ``name`` without spaces, an RGB ``color``."""

    id: int
    name: str
    color: tuple[int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": list(self.color)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "label") -> Label:
        if not isinstance(d, dict):
            raise PPSegError(f"{where}: expected an object with id, name, color, got {type(d).__name__}")
        lid, name, color = d.get("id"), d.get("name"), d.get("color", None)
        if isinstance(lid, bool) or not isinstance(lid, int) or not 1 <= lid <= MAX_LABEL_ID:
            raise PPSegError(f"{where}: id {lid!r} is not an integer in 1..{MAX_LABEL_ID} (0 is the background)")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PPSegError(f"{where}: name {name!r} must be 1..64 characters without spaces")
        if color is None:
            color = default_color(lid)
        if (not isinstance(color, (list, tuple)) or len(color) != 3
                or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255 for v in color)):
            raise PPSegError(f"{where}: color {color!r} must be three integers 0..255")
        return cls(lid, name, (int(color[0]), int(color[1]), int(color[2])))


def check_labels(labels: Sequence[Label], where: str = "labels") -> list[Label]:
    """Labels with unique ids and names, sorted by id."""
    ids: dict[int, str] = {}
    names: set[str] = set()
    for lab in labels:
        if lab.id in ids:
            raise PPSegError(f"{where}: label id {lab.id} is used twice ({ids[lab.id]!r} and {lab.name!r})")
        if lab.name in names:
            raise PPSegError(f"{where}: label name {lab.name!r} is used twice")
        ids[lab.id] = lab.name
        names.add(lab.name)
    return sorted(labels, key=lambda lab: lab.id)


# --------------------------------------------------------------------------- labels.txt
def parse_labels_txt(text: str, where: str = "labels.txt") -> list[Label]:
    """Read a labels file in either of PaddleSeg's layouts:

    * EISeg's label list: ``id name r g b`` per line (``1 person 255 0 0``);
    * a dataset's class list: one name per line, the first line being the background
      (``background``, ``_background_``), the line number the id.

    Blank lines and ``#`` comments are skipped; a bad line raises naming the line."""
    rows = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        rows.append((n, line.split()))
    if not rows:
        raise PPSegError(f"{where}: no labels in the file")
    labels: list[Label] = []
    if all(len(parts) == 1 for _, parts in rows):  # a class list: background first
        names = [parts[0] for _, parts in rows]
        start = 1 if names[0].strip("_").lower() in ("background", "bg", "ignore", "unlabeled") else 0
        for i, (n, parts) in enumerate(rows[start:], 1):
            labels.append(Label.from_dict({"id": i, "name": parts[0]}, f"{where}:{n}"))
        if not labels:
            raise PPSegError(f"{where}: only a background line; no labels")
    else:
        for n, parts in rows:
            if len(parts) not in (2, 5):
                raise PPSegError(f"{where}:{n}: expected 'id name r g b' (or one name per line), got {' '.join(parts)!r}")
            try:
                values = [int(v) for v in [parts[0], *parts[2:]]]
            except ValueError:
                raise PPSegError(f"{where}:{n}: id and colour must be integers, got {' '.join(parts)!r}") from None
            lid, color = values[0], (values[1:] if len(values) == 4 else None)
            if lid == 0:
                continue  # an explicit background line
            labels.append(Label.from_dict({"id": lid, "name": parts[1], "color": color}, f"{where}:{n}"))
    return check_labels(labels, where)


def format_labels_txt(labels: Iterable[Label]) -> str:
    """EISeg's label list (``id name r g b`` per line), which :func:`parse_labels_txt` reads back."""
    return "".join(f"{lab.id} {lab.name} {lab.color[0]} {lab.color[1]} {lab.color[2]}\n" for lab in labels)


def read_labels_file(path: str | Path, max_bytes: int = 1 << 20) -> list[Label]:
    p = Path(path)
    try:
        if p.stat().st_size > max_bytes:
            raise PPSegError(f"{p}: labels file is larger than {max_bytes >> 10} KiB")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PPSegError(f"{p}: labels file is not UTF-8 text") from None
    except OSError as e:
        raise PPSegError(f"{p}: cannot read labels file ({e.strerror or e})") from None
    return parse_labels_txt(text, str(p))


# --------------------------------------------------------------------------- masks
def encode_mask(mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """A boolean mask -> ``{"bbox": [x, y, w, h], "counts": [...]}`` (see the module docstring).
    ``offset`` (x, y) is added to the bbox (for a mask of a crop of the image)."""
    m = np.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return {"bbox": [0, 0, 0, 0], "counts": []}
    cols = np.flatnonzero(m.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    flat = m[y0:y1, x0:x1].ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"bbox": [x0 + int(offset[0]), y0 + int(offset[1]), x1 - x0, y1 - y0], "counts": counts}


def decode_mask(code: dict[str, Any], height: int | None = None, width: int | None = None,
                where: str = "mask") -> np.ndarray:
    """The inverse of :func:`encode_mask`: the bbox crop (``height``/``width`` None) or the mask
    pasted into a ``height x width`` canvas. Malformed codes raise naming ``where``."""
    try:
        x, y, w, h = (int(v) for v in code["bbox"])
        counts = np.asarray(code["counts"], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise PPSegError(f"{where}: expected {{'bbox': [x, y, w, h], 'counts': [...]}}") from None
    if min(x, y, w, h) < 0 or counts.ndim != 1 or (counts < 0).any() or int(counts.sum()) != w * h:
        raise PPSegError(f"{where}: run lengths do not add up to the bbox {w} x {h}")
    values = np.zeros(counts.size, bool)
    values[1::2] = True
    crop = np.repeat(values, counts).reshape(h, w)
    if height is None or width is None:
        return crop
    return paste_mask(crop, (x, y), height, width, where)


def paste_mask(crop: np.ndarray, xy: tuple[int, int], height: int, width: int, where: str = "mask") -> np.ndarray:
    """``crop`` placed at (x, y) in a ``height x width`` False canvas (clipped to it)."""
    out = np.zeros((height, width), bool)
    x, y = int(xy[0]), int(xy[1])
    h, w = crop.shape
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return out
    ys, xs = max(0, -y), max(0, -x)
    out[max(0, y):min(height, y + h), max(0, x):min(width, x + w)] = crop[ys:ys + min(height, y + h) - max(0, y),
                                                                          xs:xs + min(width, x + w) - max(0, x)]
    return out


@dataclass
class AnnotatedObject:
    """One finished object: its ``label`` id, its mask code, where it came from (``manual`` or
    ``propagated``) and, on video frames, the ``track`` that links one object across frames."""

    id: int
    label: int
    bbox: list[int]
    counts: list[int]
    source: str = "manual"
    track: int | None = None

    @classmethod
    def from_mask(cls, oid: int, label: int, mask: np.ndarray, offset: tuple[int, int] = (0, 0),
                  **kw: Any) -> AnnotatedObject:
        code = encode_mask(mask, offset)
        return cls(oid, label, code["bbox"], code["counts"], **kw)

    @property
    def area(self) -> int:
        return int(sum(self.counts[1::2]))

    def crop(self) -> np.ndarray:
        """The mask inside :attr:`bbox`."""
        return decode_mask({"bbox": self.bbox, "counts": self.counts}, where=f"object {self.id}")

    def mask(self, height: int, width: int) -> np.ndarray:
        return decode_mask({"bbox": self.bbox, "counts": self.counts}, height, width, where=f"object {self.id}")

    def with_mask(self, mask: np.ndarray, offset: tuple[int, int] = (0, 0)) -> AnnotatedObject:
        code = encode_mask(mask, offset)
        return replace(self, bbox=code["bbox"], counts=code["counts"])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "label": self.label, "bbox": list(self.bbox),
                             "counts": list(self.counts), "source": self.source}
        if self.track is not None:
            d["track"] = self.track
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "object") -> AnnotatedObject:
        if not isinstance(d, dict):
            raise PPSegError(f"{where}: expected an object, got {type(d).__name__}")
        try:
            obj = cls(int(d["id"]), int(d["label"]), [int(v) for v in d["bbox"]], [int(v) for v in d["counts"]],
                      str(d.get("source", "manual")), None if d.get("track") is None else int(d["track"]))
        except (KeyError, TypeError, ValueError) as e:
            raise PPSegError(f"{where}: missing or malformed field ({e})") from None
        if len(obj.bbox) != 4:
            raise PPSegError(f"{where}: bbox must be [x, y, w, h]")
        decode_mask({"bbox": obj.bbox, "counts": obj.counts}, where=where)  # validates the code
        return obj


@dataclass
class ImageRecord:
    """One image of the project and its finished objects (in paint order)."""

    key: str  # the image's path relative to the input folder (posix), unique in the project
    path: Path  # where the image is read from
    width: int
    height: int
    objects: list[AnnotatedObject] = field(default_factory=list)
    #: "" (not started), "done" (the user says it is finished) or "empty" (done, nothing to label)
    status: str = ""

    @property
    def stem(self) -> str:
        """A file name for exports: the key without its suffix, folders joined by ``__``."""
        return Path(self.key).with_suffix("").as_posix().replace("/", "__")

    @property
    def done(self) -> bool:
        return self.status in ("done", "empty")


def label_map(record: ImageRecord, dtype: Any = np.uint8) -> np.ndarray:
    """The ``height x width`` label map of a record: 0 background, each object's label painted
    in paint order (later objects cover earlier ones)."""
    out = np.zeros((record.height, record.width), dtype)
    for obj in record.objects:
        x, y, w, h = obj.bbox
        if w == 0 or h == 0:
            continue
        crop = obj.crop()
        y1, x1 = min(record.height, y + h), min(record.width, x + w)
        region = out[y:y1, x:x1]
        region[crop[:y1 - y, :x1 - x]] = obj.label
    return out
