"""The model zoo: trained weights shipped inside the package, each with a model card.

Each entry is ``<name>.json`` (the card: task, model, data, recipe, the command that reproduces
it, measured scores, latency) next to ``<name>.pt`` (a ppseg weights file, fp16) in this folder, and
optionally ``onnx/<name>.onnx`` + sidecar (the same model for ONNX Runtime, no torch needed).
``zoo:NAME`` is accepted wherever a weights file is (``ppseg click-eval --model zoo:NAME``,
``ppseg export``, ``ppseg.interactive.load_click_predictor``); ``ppseg zoo list`` prints the table.
Nothing is downloaded; adding a model is adding its two files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PPSegError

__all__ = ["ZOO_DIR", "ZooEntry", "zoo_entries", "get_entry", "resolve", "is_zoo_spec"]

ZOO_DIR = Path(__file__).resolve().parent
PREFIX = "zoo:"


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model: its card and its weights file."""

    name: str
    task: str
    model: str
    weights: Path
    summary: str = ""
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def onnx(self) -> Path | None:
        """The shipped ONNX graph (with its sidecar), when the card names one that is present."""
        rel = self.card.get("onnx")
        path = ZOO_DIR / str(rel) if rel else None
        return path if path is not None and path.is_file() else None

    @property
    def size_mb(self) -> float:
        return self.weights.stat().st_size / 2**20 if self.weights.is_file() else 0.0


def zoo_entries() -> list[ZooEntry]:
    """Every shipped model (cards whose weights file is present), by name."""
    out = []
    for card_path in sorted(ZOO_DIR.glob("*.json")):
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # a broken card is a packaging bug: say which file
            raise PPSegError(f"{card_path}: unreadable model card ({e})") from None
        weights = ZOO_DIR / str(card.get("weights", card_path.stem + ".pt"))
        if not weights.is_file():
            continue
        out.append(ZooEntry(card_path.stem, str(card.get("task", "semantic")), str(card.get("model", "")), weights,
                            str(card.get("summary", "")), card))
    return out


def is_zoo_spec(spec: Any) -> bool:
    """Whether ``spec`` (a string or a path) names a zoo model: ``zoo:NAME``."""
    if isinstance(spec, Path):
        spec = str(spec)
    return isinstance(spec, str) and spec.startswith(PREFIX)


def get_entry(spec: str, task: str | None = None) -> ZooEntry:
    """The entry of ``zoo:NAME`` (or ``NAME``); unknown names list the known ones, and an entry of
    another task than ``task`` says what it is for."""
    spec = str(spec)
    name = spec[len(PREFIX):] if is_zoo_spec(spec) else spec
    entries = {e.name: e for e in zoo_entries()}
    if name not in entries:
        known = ", ".join(f"zoo:{n}" for n in entries) or "none"
        raise PPSegError(f"unknown zoo model '{spec}'; shipped: {known} (ppseg zoo list)")
    entry = entries[name]
    if task is not None and entry.task != task:
        raise PPSegError(f"zoo:{name} is a {entry.task} model ({entry.model}), not a {task} model")
    return entry


def resolve(spec: str, task: str | None = None) -> Path:
    """The weights file of ``zoo:NAME``."""
    return get_entry(spec, task).weights
