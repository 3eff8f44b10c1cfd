"""The segmentor: a model plus its pre- and post-processing.

``Segmentor`` owns everything between an RGB image and a label map:
normalisation (mean/std on 0..255 RGB input), the inference mode (whole image or
sliding window), test-time augmentation (flip, multi-scale), and the reverse
resizing of logits to the original image size (PaddleSeg ``core/infer``
semantics, spec §9.2). The wrapped model only ever sees normalised tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import MAX_CLASSES, is_finite_number
from ..errors import ConfigError, PPSegError
from ..data.sample import GeomOp, Resize, invert_tensor
from ..models.layers import first_output, output_list
from .vim import vim, vim_exact

if TYPE_CHECKING:  # pragma: no cover
    from ..config import Config


#: the largest test-time scale: an image scaled further would not fit in memory, and is a typo
MAX_SCALE = 10.0


class Segmentor(nn.Module):
    """Wrap a segmentation model with normalisation and inference modes.

    Args:
        model: a network taking normalised NCHW input and returning, in training
            mode, a list of logits (main first), in eval mode one logits tensor.
        mean: per-channel mean of RGB input scaled to 0..1.
        std: per-channel standard deviation, same scale.
        mode: ``"whole"`` runs the full image at once, ``"slide"`` runs windows
            of ``crop_size`` every ``stride`` pixels and averages overlaps.
        crop_size: sliding window size ``(w, h)``.
        stride: sliding window stride ``(w, h)``.
        scales: test-time scales (1.0 = none).
        flip: also predict the horizontally flipped image and average.
        fusion: how test-time augmentations are combined: ``"logits"`` averages
            raw logits, every scale resized from the input (PaddleSeg 2.8+);
            ``"softmax"`` sums probabilities, each scale resized from the previous
            scale's image (PaddleSeg 2.1-2.7, used for PP-LiteSeg's published numbers).
        postprocess: how :meth:`predict` turns the network output into labels:
            ``"argmax"`` takes the argmax of the fused full-resolution logits;
            ``"vim"`` (PaddleSeg's Valid Interpolate Module, :func:`ppseg.semantic.vim.vim`) and
            ``"vim_exact"`` (:func:`ppseg.semantic.vim.vim_exact`, the same labels as ``"argmax"``
            when the model's ``forward`` is a bilinear resize of ``forward_lowres``, but
            faster) work on the model's low-resolution logits: the model needs a
            ``forward_lowres(x)`` method (e.g. ``pp_mobileseg_*``), and only whole-image
            inference without test-time augmentation is possible.
            :meth:`predict_logits` always returns full-resolution logits.

    Example:
        >>> seg = Segmentor(create_model("lraspp_mobilenetv3_large", num_classes=11))
        >>> labels = seg.eval().predict(images_0_255)   # [N, H, W] int64
    """

    def __init__(
        self,
        model: nn.Module,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        mode: Literal["whole", "slide"] = "whole",
        crop_size: tuple[int, int] | None = None,
        stride: tuple[int, int] | None = None,
        scales: Sequence[float] = (1.0,),
        flip: bool = False,
        fusion: Literal["logits", "softmax"] = "logits",
        postprocess: Literal["argmax", "vim", "vim_exact"] = "argmax",
    ) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ConfigError(f"mean and std need 3 values (RGB), got mean={list(mean)} std={list(std)}")
        for name, values in (("mean", mean), ("std", std)):
            if not all(is_finite_number(v) for v in values):
                raise ConfigError(f"{name} must be 3 finite numbers, got {list(values)}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std must be positive, got {list(std)}")
        if mode not in ("whole", "slide"):
            raise ConfigError(f"mode must be 'whole' or 'slide', got {mode!r}")
        if mode == "slide" and (crop_size is None or stride is None):
            raise ConfigError("mode 'slide' needs crop_size and stride, e.g. crop_size=(512, 512), stride=(341, 341)")
        for name, v in (("crop_size", crop_size), ("stride", stride)):
            if v is not None and (len(v) != 2 or min(v) < 1):
                raise ConfigError(f"{name} must be two positive integers (w, h), got {v}")
        if crop_size is not None and stride is not None and (stride[0] > crop_size[0] or stride[1] > crop_size[1]):
            raise ConfigError(f"stride {list(stride)} is larger than crop_size {list(crop_size)}: "
                              "sliding windows would leave pixels unpredicted")
        if not scales or not all(is_finite_number(s) and 0 < s <= MAX_SCALE for s in scales):
            raise ConfigError(f"scales must be positive numbers (at most {MAX_SCALE:g}), got {list(scales)}")
        if fusion not in ("logits", "softmax"):
            raise ConfigError(f"fusion must be 'logits' or 'softmax', got {fusion!r}")
        if postprocess not in ("argmax", "vim", "vim_exact"):
            raise ConfigError(f"postprocess must be 'argmax', 'vim' or 'vim_exact', got {postprocess!r}")
        if postprocess != "argmax":
            if not callable(getattr(model, "forward_lowres", None)):
                raise ConfigError(f"postprocess {postprocess!r} needs a model with low-resolution logits "
                                  "(forward_lowres), e.g. pp_mobileseg_*")
            tta = [name for name, on in (("mode 'slide'", mode == "slide"), ("flip", flip),
                                         (f"scales {list(scales)}", tuple(float(s) for s in scales) != (1.0,)))
                   if on]
            if tta:
                raise ConfigError(f"postprocess {postprocess!r} works on one whole-image low-resolution output "
                                  f"and cannot be combined with {', '.join(tta)}: sliding windows and "
                                  "test-time augmentation fuse full-resolution logits; use postprocess 'argmax'")
        self.model = model
        self.register_buffer("mean", torch.tensor([m * 255.0 for m in mean]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([s * 255.0 for s in std]).view(1, 3, 1, 1), persistent=False)
        self.mode = mode
        self.crop_size = tuple(crop_size) if crop_size else None
        self.stride = tuple(stride) if stride else None
        self.scales = tuple(float(s) for s in scales)
        self.flip = flip
        self.fusion = fusion
        self.postprocess = postprocess

    @property
    def num_classes(self) -> int:
        return int(self.model.num_classes)

    def normalize(self, images: Tensor) -> Tensor:
        """RGB 0..255 (any dtype) -> normalised float."""
        return (images.float() - self.mean) / self.std

    def forward(self, images: Tensor) -> list[Tensor] | Tensor:
        """Training: the model's list of logits. Eval: fused logits at input size."""
        if self.training:
            out = self.model(self.normalize(images))
            return output_list(out)
        return self.predict_logits(images)

    # ------------------------------------------------------------------ inference

    def _infer(self, x: Tensor) -> Tensor:
        """One forward pass on normalised input, whole or sliding window."""
        if self.mode == "slide":
            return self._slide(x)
        out = self.model(x)
        return first_output(out)

    def _slide(self, x: Tensor) -> Tensor:
        assert self.crop_size is not None and self.stride is not None
        n, _, h, w = x.shape
        cw, ch = self.crop_size
        sw, sh = self.stride
        rows = 1 if h <= ch else math.ceil((h - ch) / sh) + 1
        cols = 1 if w <= cw else math.ceil((w - cw) / sw) + 1
        logits: Tensor | None = None
        count = x.new_zeros(1, 1, h, w)
        for r in range(rows):
            for c in range(cols):
                y1 = min(r * sh, max(h - ch, 0))
                x1 = min(c * sw, max(w - cw, 0))
                y2, x2 = min(y1 + ch, h), min(x1 + cw, w)
                out = self.model(x[:, :, y1:y2, x1:x2])
                out = first_output(out)
                if logits is None:
                    logits = x.new_zeros(n, out.shape[1], h, w)
                logits[:, :, y1:y2, x1:x2] += out.float()
                count[:, :, y1:y2, x1:x2] += 1
        assert logits is not None
        return logits / count

    @torch.no_grad()
    def predict_logits(self, images: Tensor) -> Tensor:
        """Fused logits [N, C, H, W] at the input size (float32)."""
        x = self.normalize(images)
        h, w = x.shape[-2:]
        if self.scales == (1.0,) and not self.flip:
            return self._infer(x).float()
        fused: Tensor | None = None
        xs = x
        for s in self.scales:
            size = (int(h * s + 0.5), int(w * s + 0.5))
            # "logits" (2.8+) resizes every scale from the input; "softmax" (2.1-2.7) resized each
            # scale from the previous scale's image (spec §11.13)
            src = xs if self.fusion == "softmax" else x
            xs = src if tuple(src.shape[-2:]) == size else F.interpolate(
                src, size=size, mode="bilinear", align_corners=False)
            for flipped in ((False, True) if self.flip else (False,)):
                inp = torch.flip(xs, dims=[3]) if flipped else xs
                out = self._infer(inp).float()
                if flipped:
                    out = torch.flip(out, dims=[3])
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
                if self.fusion == "softmax":
                    out = out.softmax(dim=1)
                fused = out if fused is None else fused + out
        assert fused is not None
        n_aug = len(self.scales) * (2 if self.flip else 1)
        return fused if self.fusion == "softmax" else fused / n_aug

    @torch.no_grad()
    def predict(self, images: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        """Label map [N, H, W] (int64), post-processed as ``postprocess`` says.

        Args:
            images: RGB 0..255, [N, 3, H, W].
            size: output ``(H, W)``; default the input size. VIM upsamples its
                low-resolution logits straight to this size.
        """
        size = tuple(size) if size is not None else (int(images.shape[-2]), int(images.shape[-1]))
        if self.postprocess == "argmax":
            logits = self.predict_logits(images)
            if tuple(logits.shape[-2:]) != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return logits.argmax(dim=1)
        low = self.model.forward_lowres(self.normalize(images))
        low = first_output(low)
        labels_from = vim if self.postprocess == "vim" else vim_exact
        return labels_from(low.float(), size)

    @torch.no_grad()
    def predict_original(self, images: Tensor, ops: Sequence[GeomOp], size: tuple[int, int]) -> Tensor:
        """Labels [N, H, W] at the original image ``size``, undoing the sample's recorded geometric ops.

        ``argmax``: logits are mapped back through ``ops`` (:func:`ppseg.data.sample.invert_tensor`:
        resizes bilinearly, paddings cropped, crops padded, flips flipped) and resized to ``size``.
        VIM modes upsample straight to ``size``, which undoes resizes but nothing else.
        """
        if self.postprocess == "argmax":
            logits = invert_tensor(ops, self.predict_logits(images))
            if tuple(logits.shape[-2:]) != tuple(size):
                logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
            return logits.argmax(dim=1)
        if any(not isinstance(op, Resize) for op in ops):
            raise ConfigError(f"postprocess '{self.postprocess}' can only undo resizes, not "
                              f"{', '.join(sorted({type(op).__name__ for op in ops if not isinstance(op, Resize)}))}; "
                              "use Resize (not Padding) in the val transforms, or postprocess='argmax'")
        return self.predict(images, size=tuple(size))




def segmentor_kwargs(cfg: Config) -> dict[str, Any]:
    """The config's ``segmentor`` section, validated against :class:`Segmentor`'s signature."""
    from ..config import build_kwargs
    from ..engine.build import section

    return build_kwargs(section(cfg, "segmentor", required=False) or {}, Segmentor, cfg, "segmentor",
                        exclude=("model",))


def build_segmentor(cfg: Config, model: nn.Module, **overrides: Any) -> Segmentor:
    """A :class:`Segmentor` around ``model`` from the config's ``segmentor`` section (+ ``overrides``;
    ``None`` values ignored); a bad value is one error naming the config file and section, or the
    command-line flags when the overrides are at fault."""
    base = segmentor_kwargs(cfg)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        seg = Segmentor(model, **base)
    except ConfigError as e:
        raise ConfigError(f"{cfg.where('segmentor')}: {e}") from None
    if not overrides:
        return seg
    try:
        return Segmentor(model, **{**base, **overrides})
    except ConfigError as e:  # the command line's inference flags, not the config file
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in overrides)
        raise ConfigError(f"{flags}: {e}") from None


def check_weights_fit_config(name: str, config_kwargs: dict, ckpt: dict, path: str | Path) -> None:
    """Refuse a weights file built with other inference-relevant kwargs (e.g. ``aam_gate_act``)
    than the config: shapes alone cannot tell a sigmoid-gated model from a relu6-gated one.
    Training-only kwargs (:func:`ppseg.registry.training_only_kwargs`) and ``num_classes``
    (the shape check explains that one) may differ."""
    from ..config import signature_params
    from ..registry import get_factory, training_only_kwargs

    saved = ckpt.get("model_kwargs")
    if not isinstance(saved, dict) or ckpt.get("model") != name:
        return
    defaults = {k: d for k, (_, d) in signature_params(get_factory(name)).items()}
    skip = set(training_only_kwargs(name)) | {"num_classes"}
    for key in sorted(set(saved) | set(config_kwargs)):
        if key in skip or key not in defaults:
            continue
        a, b = saved.get(key, defaults[key]), config_kwargs.get(key, defaults[key])
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)
        if a != b:
            raise ConfigError(f"{path}: the checkpoint's model has {key}={a!r}, but the config builds {key}={b!r}; "
                              f"set model.{key}: {a!r} in the config (or --opts model.{key}={a})")


def load_segmentor(path: str | Path, *, config: "Config | None" = None, num_classes: int | None = None,
                   **overrides: Any) -> Segmentor:
    """Rebuild a model from a weights file, load its weights and wrap it for inference.

    Without ``config`` the file says everything: its registry name, the model's kwargs and
    (files written by ``ppseg train``) the segmentor's mean/std and inference mode. With a
    ``config`` (``ppseg val/predict -c``) the config builds the model (``num_classes`` from its
    dataset) and the segmentor, and a file whose model differs in an inference-relevant kwarg
    is refused. ``overrides`` replace segmentor settings (e.g. ``flip=True``); ``None`` values
    are ignored.

    Example:
        >>> seg = ppseg.load_segmentor("output/camvid/best_model.pt")
        >>> labels = seg.predict(images)          # RGB 0..255, [N, 3, H, W]
    """
    from ..registry import create_model
    from ..weights import load_file, load_weights

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config is None:  # Python callers; with a config they are command-line flags (build_segmentor names them)
        overrides = _check_overrides(overrides)
    ckpt = load_file(path)
    if config is not None:
        from ..engine import build

        name, kwargs, model = build.build_model(config, num_classes)
        check_weights_fit_config(name, kwargs, ckpt, path)
        load_weights(model, ckpt, Path(path), name)
        return build_segmentor(config, model, **overrides).eval()
    name = ckpt.get("model")
    if not name or not isinstance(name, str):
        raise PPSegError(f"{path}: the checkpoint does not record its model name")
    model_kwargs = dict(ckpt.get("model_kwargs", {}))
    n = model_kwargs.get("num_classes")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CLASSES):
        raise PPSegError(f"{path}: the recorded num_classes {n!r} is not an integer in [1, {MAX_CLASSES}]")
    seg_kwargs = ckpt.get("meta", {}).get("segmentor", {})
    if not isinstance(seg_kwargs, dict):
        raise PPSegError(f"{path}: the recorded segmentor settings must be a mapping, got {seg_kwargs!r}")
    try:
        model = create_model(name, **model_kwargs)
    except (ConfigError, ValueError, TypeError) as e:
        raise PPSegError(f"{path}: the recorded model settings are invalid ({e})") from None
    if num_classes is not None and num_classes != getattr(model, "num_classes", num_classes):
        raise ConfigError(f"load_segmentor: num_classes={num_classes!r}, but {path} holds a model of "
                          f"{model.num_classes} classes")
    load_weights(model, ckpt, path, name)
    try:
        seg = Segmentor(model, **seg_kwargs)
    except (ConfigError, ValueError, TypeError) as e:
        raise PPSegError(f"{path}: the recorded segmentor settings are invalid ({e})") from None
    if not overrides:
        return seg.eval()
    try:  # the caller's settings, not the file's
        return Segmentor(model, **{**seg_kwargs, **overrides}).eval()
    except ConfigError as e:
        raise ConfigError(f"load_segmentor: {e}") from None


def _check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Segmentor settings given to :func:`load_segmentor`, checked by name and type like a config's
    ``segmentor`` section (a :class:`ConfigError` naming the argument)."""
    from ..config import _NO, _type_name, coerce, did_you_mean, not_finite_note, signature_params

    params = {k: v for k, v in signature_params(Segmentor).items() if k != "model"}
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in params:
            raise ConfigError(f"load_segmentor: unknown segmentor setting '{key}'{did_you_mean(key, params)}")
        got = coerce(value, params[key][0])
        if got is _NO:
            raise ConfigError(f"load_segmentor: {key} expects {_type_name(params[key][0])}, got {value!r}"
                              f"{not_finite_note(value)}")
        out[key] = got
    return out
