"""Convert official checkpoints (PaddleSeg ``.pdparams``, MMSeg ``.pth``) into ppseg models.

Two entry points:

* :func:`convert_checkpoint` - official file -> ppseg weights file (``ppseg convert``),
  usable by ``ppseg val/predict --model`` and :func:`ppseg.load_segmentor`;
* :func:`load_pretrained` - load a ``.pdparams``, an MMSeg ``.pth`` or a ppseg
  weights file into a model you already built.

Both read files without running code from them (a restricted unpickler for
``.pdparams``, ``torch.load(weights_only=True)`` for ``.pth``), rename keys with
``paddle_to_torch_state`` (MMSeg keys are first rewritten to Paddle's names),
and load with ``strict=True``: every checkpoint tensor must be used and every
model tensor filled, or one :class:`~ppseg.errors.PPSegError` names the key.

Examples:
    >>> from ppseg.convert import convert_checkpoint
    >>> report = convert_checkpoint("model.pdparams", source="paddle",
    ...                             model="pp_mobileseg_tiny", out="tiny_ade.pt")
    >>> print(report.summary())
    >>> seg = ppseg.load_segmentor("tiny_ade.pt")

    >>> model = ppseg.create_model("pp_mobileseg_base", num_classes=150)
    >>> ppseg.load_pretrained(model, "model.pdparams", model_name="pp_mobileseg_base")
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, PPSegError
from .mmseg import mmseg_to_paddle, read_mmseg, torch_load_error
from .pdparams import is_pickle_file, read_pdparams

__all__ = ["ConvertReport", "ConverterOptions", "CONVERTER_OPTIONS", "converter_options", "convert_checkpoint",
           "load_pretrained", "infer_num_classes", "detect_source"]

Source = Literal["paddle", "mmseg"]


@dataclass(frozen=True)
class ConverterOptions:
    """Per-model conversion options, passed to ``paddle_to_torch_state``.

    Attributes:
        drop: regular expressions (``re.search``) over checkpoint keys (Paddle
            names) to drop on purpose, e.g. dead weights of the reference that the
            ppseg model does not have.
        defaults: ppseg model key, or a regular expression matching whole keys,
            -> constant used when an (older) checkpoint lacks the key, e.g.
            ``{r"ppseg_head\\.arm_list\\.\\d+\\._scale": 1.0}`` for PP-LiteSeg.
    """

    drop: tuple[str, ...] = ()
    defaults: Mapping[str, float] = field(default_factory=dict)


#: Converter options per registry-name prefix (the longest matching prefix wins).
#: A model without an entry converts with no drops and no defaults (strict).
CONVERTER_OPTIONS: dict[str, ConverterOptions] = {
    # PP-LiteSeg checkpoints from before Aug 2022 (the released ones) lack the UAFMs' fixed
    # `_scale` (then a literal 1 in the formula): fill it with 1.0 and report it (spec 3.2, 9.3).
    "pp_liteseg": ConverterOptions(defaults={r"ppseg_head\.arm_list\.\d+\._scale": 1.0}),
    "pp_mobileseg": ConverterOptions(),
    # PP-HumanSeg: the ppseg models hold only the weights their forward uses; the reference's
    # dead tensors are dropped and reported (see ppseg.models.pp_humanseg).
    # V1-Lite: stride-1 shuffle units' unused `_depthwise_separable_0` (95,040 params, spec 4.1).
    "pp_humanseg_lite_v1": ConverterOptions(drop=(r"^block[12]\.[1-9]\d*\._depthwise_separable_0\.",)),
    "pp_humansegv2_lite_general": ConverterOptions(),
    # V2-Lite portrait: MobileNetV3 blocks 12-14 (1/32) are built by the reference but unused.
    "pp_humansegv2_lite_portrait": ConverterOptions(drop=(r"^backbone\.blocks\.1[2-4]\.",)),
    # V2-Mobile is a PP-LiteSeg: same `_scale` fill as above for checkpoints without it.
    "pp_humansegv2_mobile": ConverterOptions(defaults={r"ppseg_head\.arm_list\.\d+\._scale": 1.0}),
    # EdgeFlow (EISeg HRNetEdgeModel): FineNet's bottleneck builds a 3x3 `conv2`/`bn2` that its
    # forward never calls (9,280 params + 64 BN statistics, 5 tensors; spec 6.2 item 12); the
    # ppseg model does not hold them (see ppseg.models.edgeflow).
    "edgeflow": ConverterOptions(drop=(r"^finenet\.final_predict\.0\.(conv2|bn2)\.",)),
}


def converter_options(model_name: str | None) -> ConverterOptions:
    """The :class:`ConverterOptions` of a registry name (empty options when none match)."""
    if not model_name:
        return ConverterOptions()
    matches = [p for p in CONVERTER_OPTIONS if model_name.startswith(p)]
    return CONVERTER_OPTIONS[max(matches, key=len)] if matches else ConverterOptions()


@dataclass
class ConvertReport:
    """What a conversion or :func:`load_pretrained` did.

    Attributes:
        model: registry name (``None`` when :func:`load_pretrained` was not told it).
        source: ``"paddle"``, ``"mmseg"`` or ``"ppseg"``.
        src: the checkpoint read.
        source_sha256: SHA-256 of ``src``.
        out: the weights file written (``None`` for :func:`load_pretrained`).
        num_classes: classes of the built model (``None`` if the model has no such argument or was given).
        num_classes_from: ``"argument"``, or the checkpoint key it was inferred from.
        model_kwargs: the model's constructor arguments, as recorded in the weights file.
        tensors: tensors read from the checkpoint (bookkeeping entries excluded).
        loaded: entries of the model's state dict that were loaded.
        renamed: keys whose name changed on the way (as reported by the converter).
        dropped: checkpoint keys dropped on purpose.
        filled: model keys filled from the converter's ``defaults`` (BN ``num_batches_tracked``
            buffers, always set to 0, are not listed).
    """

    model: str | None
    source: str
    src: Path
    source_sha256: str
    out: Path | None = None
    num_classes: int | None = None
    num_classes_from: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    tensors: int = 0
    loaded: int = 0
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few human-readable lines (what ``ppseg convert`` prints)."""
        lines = [f"model:       {self.model or '(not named)'}"]
        if self.num_classes is not None:
            how = "given" if self.num_classes_from == "argument" else f"inferred from '{self.num_classes_from}'"
            lines.append(f"num_classes: {self.num_classes} ({how})")
        extra = {k: v for k, v in self.model_kwargs.items() if k != "num_classes"}
        if extra:
            lines.append("options:     " + ", ".join(f"{k}={v}" for k, v in extra.items()))
        lines.append(f"source:      {self.source} checkpoint {self.src} (sha256 {self.source_sha256[:16]}...)")
        zeroed = self.loaded - (self.tensors - len(self.dropped)) - len(self.filled)
        zero_note = f"; {zeroed} num_batches_tracked set to 0" if zeroed > 0 else ""
        lines.append(f"tensors:     {self.tensors} read -> {self.loaded} model entries (renamed {len(self.renamed)}, "
                     f"dropped {len(self.dropped)}, filled {len(self.filled)}{zero_note})")
        if self.dropped:
            lines.append("dropped:     " + ", ".join(self.dropped))
        if self.filled:
            lines.append("filled:      " + ", ".join(self.filled))
        if self.out is not None:
            lines.append(f"wrote:       {self.out}")
        return "\n".join(lines)


def _renames(converted: Any, origin: Mapping[str, str]) -> list[tuple[str, str]]:
    """``(key in the user's file, model key)`` for every key whose name changed end to end."""
    step2 = dict(converted.renamed)
    out = [(origin.get(p, p), t) for p, t in converted.renamed if origin.get(p, p) != t]
    out += [(o, p) for p, o in origin.items() if p not in step2 and o != p]
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------ reading sources


def detect_source(path: str | Path) -> str:
    """``"paddle"``, ``"mmseg"`` or ``"ppseg"`` from the suffix and the first bytes / content."""
    path = Path(path)
    if not path.is_file():
        raise PPSegError(f"{path}: checkpoint file not found")
    if path.suffix == ".pdparams":
        return "paddle"
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK") or (len(head) == 4 and head[:2] == b"\x80\x02" and head[2:4] == b"\x8a\x0a"):
        # torch.save: a zip archive, or the legacy format (pickled magic number first)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise PPSegError(torch_load_error(path, e)) from None
        return "ppseg" if isinstance(obj, Mapping) and obj.get("format") == "ppseg" else "mmseg"
    if is_pickle_file(path):
        return "paddle"
    raise PPSegError(f"{path}: not a checkpoint this package can read (expected a .pdparams pickle, "
                     "an MMSeg .pth or a ppseg weights file)")


def _read_paddle_layout(path: Path, source: str, model_name: str | None,
                        ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``({paddle name: array}, {paddle name: original name})`` of a Paddle or MMSeg checkpoint."""
    if source == "paddle":
        return read_pdparams(path), {}
    if source == "mmseg":
        return mmseg_to_paddle(read_mmseg(path), model_name)
    raise PPSegError(f"unknown checkpoint source '{source}' (expected 'paddle' or 'mmseg')")


def _convert_into(model: nn.Module, arrays: Mapping[str, np.ndarray], origin: Mapping[str, str], path: Path,
                  model_name: str | None) -> Any:
    """Rename ``arrays`` for ``model`` and load them with ``strict=True``; returns the ConvertedState."""
    from .paddle_keys import paddle_to_torch_state

    opts = converter_options(model_name)
    what = f"model '{model_name}'" if model_name else f"the {type(model).__name__} model"
    try:
        converted = paddle_to_torch_state(arrays, model, drop=opts.drop, defaults=dict(opts.defaults))
    except PPSegError as e:
        msg = str(e)
        for paddle_name, orig in origin.items():  # name the key as it is in the user's file
            if f"'{paddle_name}'" in msg:
                msg += f" (mmseg key '{orig}')"
                break
        raise PPSegError(f"{path}: does not fit {what}: {msg}") from None
    # check before loading: a failing strict load_state_dict has already copied the tensors that fit
    state, own = converted.state_dict, model.state_dict()
    problem = next((f"model key '{k}' is missing from the converted state" for k in own if k not in state), None)
    problem = problem or next((f"converted key '{k}' is not in the model" for k in state if k not in own), None)
    problem = problem or next((f"key '{k}' has shape {list(v.shape)} in the checkpoint but {list(own[k].shape)} "
                               "in the model" for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)),
                              None)
    if problem:
        raise PPSegError(f"{path}: does not fit {what}: {problem}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:300]
        raise PPSegError(f"{path}: does not fit {what}: {detail}") from None
    return converted


# ------------------------------------------------------------------ num_classes


def _class_dims(model_name: str, kwargs: Mapping[str, Any]) -> list[tuple[str, int]]:
    """``(state-dict key, dim)`` of every model tensor whose size along ``dim`` is ``num_classes``.

    Found by building the model for two different class counts and comparing shapes.
    """
    from ..registry import create_model

    a, b = 37, 53
    sa = create_model(model_name, **kwargs, num_classes=a).state_dict()
    sb = create_model(model_name, **kwargs, num_classes=b).state_dict()
    out = []
    for key, ta in sa.items():
        tb = sb.get(key)
        if tb is None or ta.dim() != tb.dim() or ta.shape == tb.shape:
            continue
        diff = [d for d in range(ta.dim()) if ta.shape[d] != tb.shape[d]]
        if len(diff) == 1 and ta.shape[diff[0]] == a and tb.shape[diff[0]] == b:
            out.append((key, diff[0]))
    return out


def _paddle_candidates(torch_key: str) -> list[str]:
    cands = [torch_key]
    for pat, rep in ((r"\.running_mean$", "._mean"), (r"\.running_var$", "._variance"), (r"\.weight$", "._weight")):
        alt = re.sub(pat, rep, torch_key)
        if alt != torch_key:
            cands.append(alt)
    return cands


def infer_num_classes(model_name: str, arrays: Mapping[str, np.ndarray], path: str | Path = "checkpoint",
                      **model_kwargs: Any) -> tuple[int, str]:
    """``(num_classes, checkpoint key)`` read from the checkpoint's classifier shape.

    The classifier tensors are the model tensors whose size changes with
    ``num_classes`` (e.g. ``decode_head.conv_seg.weight`` / ``.bias``); their
    counterparts in the checkpoint must all agree.
    """
    found: list[tuple[str, int]] = []
    for key, dim in _class_dims(model_name, model_kwargs):
        for cand in _paddle_candidates(key):
            arr = arrays.get(cand)
            if arr is not None and arr.ndim > dim:
                found.append((cand, int(arr.shape[dim])))
                break
    if not found:
        raise PPSegError(f"{path}: cannot infer num_classes for '{model_name}' (none of its classifier tensors "
                         "is in the checkpoint); pass num_classes (--num-classes)")
    values = {n for _, n in found}
    if len(values) > 1:
        detail = ", ".join(f"'{k}' says {n}" for k, n in found)
        raise PPSegError(f"{path}: the classifier tensors disagree on num_classes ({detail})")
    return found[0][1], found[0][0]


# ------------------------------------------------------------------ public API


def convert_checkpoint(src: str | Path, *, source: Source, model: str, out: str | Path,
                       num_classes: int | None = None, **model_kwargs: Any) -> ConvertReport:
    """Convert an official checkpoint into a ppseg weights file.

    Args:
        src: the ``.pdparams`` (``source="paddle"``) or MMSeg ``.pth`` (``source="mmseg"``).
        model: registry name of the ppseg model, e.g. ``"pp_mobileseg_tiny"``.
        out: the weights file to write (written atomically; nothing is written on any error).
        num_classes: classes of the checkpoint; inferred from its classifier when ``None``.
        **model_kwargs: further constructor arguments, e.g. ``aam_gate_act="relu6"``.

    Returns:
        a :class:`ConvertReport`.

    Raises:
        PPSegError: unreadable/malicious file, unknown model or argument, or any key/shape mismatch.
    """
    from ..weights import atomic_save, weights_file
    from ..registry import check_model_kwargs, create_model, get_factory
    from ..config import signature_params

    src, out = Path(src), Path(out)
    if source not in ("paddle", "mmseg"):
        raise ConfigError(f"source must be 'paddle' or 'mmseg', got {source!r}")
    if not src.is_file():
        raise PPSegError(f"{src}: checkpoint file not found")
    if out.exists() and out.resolve() == src.resolve():
        raise PPSegError(f"{out}: the output would overwrite the checkpoint being converted")
    if out.is_dir():
        raise PPSegError(f"{out}: is a directory; give the weights file to write, e.g. {out / (model + '.pt')}")
    factory_params = signature_params(get_factory(model))  # unknown model -> ConfigError
    if "num_classes" in model_kwargs:
        if num_classes is not None and model_kwargs["num_classes"] != num_classes:
            raise ConfigError("num_classes given twice with different values")
        num_classes = model_kwargs.pop("num_classes")
    if num_classes is not None and "num_classes" not in factory_params:
        raise ConfigError(f"model '{model}' has no argument 'num_classes'")
    # the model's arguments are checked before the checkpoint is read
    model_kwargs = check_model_kwargs(model, model_kwargs)
    if num_classes is not None:
        num_classes = check_model_kwargs(model, {"num_classes": num_classes})["num_classes"]

    arrays, origin = _read_paddle_layout(src, source, model)
    sha = _sha256(src)

    kwargs = dict(model_kwargs)
    from_ = None
    if "num_classes" in factory_params:
        if num_classes is None:
            num_classes, from_ = infer_num_classes(model, arrays, src, **kwargs)
        else:
            from_ = "argument"
        kwargs["num_classes"] = int(num_classes)

    net = create_model(model, **kwargs)
    try:
        converted = _convert_into(net, arrays, origin, src, model)
    except PPSegError as e:
        if from_ == "argument":  # a wrong num_classes is the likely cause: say what the checkpoint has
            try:
                n, key = infer_num_classes(model, arrays, src, **model_kwargs)
            except PPSegError:
                n, key = num_classes, ""
            if n != num_classes:
                raise PPSegError(f"{e} (the checkpoint's '{key}' is for {n} classes, not {num_classes})") from None
        raise
    state = net.state_dict()
    report = ConvertReport(
        model=model, source=source, src=src, source_sha256=sha, out=out,
        num_classes=kwargs.get("num_classes"), num_classes_from=from_, model_kwargs=kwargs,
        tensors=len(arrays), loaded=len(state), renamed=_renames(converted, origin),
        dropped=[origin.get(k, k) for k in converted.dropped], filled=list(converted.filled))
    obj = weights_file(model, kwargs, state, source=source, source_file=src.name, source_sha256=sha,
                       dropped=report.dropped, filled=report.filled, converted_by="ppseg convert")
    atomic_save(obj, out)
    return report


def load_pretrained(model: nn.Module, path: str | Path, *,
                    source: Literal["auto", "ppseg", "paddle", "mmseg"] = "auto",
                    model_name: str | None = None) -> ConvertReport:
    """Load a ``.pdparams``, an MMSeg ``.pth`` or a ppseg weights file into ``model`` (strict).

    Args:
        model: a built ppseg model (e.g. from :func:`ppseg.create_model`).
        path: the checkpoint, or ``zoo:NAME`` (a shipped model, :mod:`ppseg.zoo`).
        source: ``"auto"`` detects it: ``.pdparams`` suffix or a plain pickle -> Paddle;
            a PyTorch file with ``format: ppseg`` -> ppseg weights file; any other
            PyTorch file -> MMSeg.
        model_name: the model's registry name; selects the per-model converter
            options (:data:`CONVERTER_OPTIONS`) and MMSeg key mapping (default:
            strict options, PP-MobileSeg's MMSeg mapping).

    Returns:
        a :class:`ConvertReport` (``out`` is ``None``).

    Raises:
        PPSegError: one line naming the file and the first mismatching key; the model
            is left unchanged when the checkpoint does not fit.
    """
    from ..weights import load_file, load_weights

    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be a built model (e.g. ppseg.create_model(...)), got {type(model).__name__} "
                          f"{model!r:.60}")
    from ..zoo import is_zoo_spec, resolve

    path = resolve(str(path)) if is_zoo_spec(path) else Path(path)
    if source not in ("auto", "ppseg", "paddle", "mmseg"):
        raise ConfigError(f"source must be 'auto', 'ppseg', 'paddle' or 'mmseg', got {source!r}")
    if source == "auto":
        source = detect_source(path)  # type: ignore[assignment]
    elif not path.is_file():
        raise PPSegError(f"{path}: checkpoint file not found")
    sha = _sha256(path)
    if source == "ppseg":
        ckpt = load_file(path)
        saved = ckpt.get("model")
        load_weights(model, ckpt, path, model_name or saved or "")
        state = ckpt["state_dict"]
        own = model.state_dict()
        filled = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
        return ConvertReport(model=model_name or saved, source="ppseg", src=path, source_sha256=sha,
                             model_kwargs=dict(ckpt.get("model_kwargs", {})),
                             num_classes=ckpt.get("model_kwargs", {}).get("num_classes"),
                             num_classes_from="argument" if "num_classes" in ckpt.get("model_kwargs", {}) else None,
                             tensors=len(state), loaded=len(own), filled=filled)
    arrays, origin = _read_paddle_layout(path, source, model_name)
    converted = _convert_into(model, arrays, origin, path, model_name)
    return ConvertReport(model=model_name, source=source, src=path, source_sha256=sha, tensors=len(arrays),
                         loaded=len(model.state_dict()), renamed=_renames(converted, origin),
                         dropped=[origin.get(k, k) for k in converted.dropped], filled=list(converted.filled))
