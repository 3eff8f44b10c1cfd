"""The PaddleSeg reference (optional, never a dependency): how it is installed, how each ppseg model maps
to the reference's constructor call (:data:`PADDLE_REFERENCE`), whether a configuration has a reference
at all (:func:`paddle_reference`), and the ``paddle`` case the worker times (``paddle``/``paddleseg``
imported only there, inside the measuring subprocess).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .config import BenchConfig

PADDLE_INSTALL = "pip install paddlepaddle==2.6.2 paddleseg==2.8.0"

#: ppseg model -> how the PaddleSeg reference builds it (spec: architectures.md; parity fixtures)
PADDLE_REFERENCE: dict[str, str] = {
    "pp_mobileseg_tiny": "PPMobileSeg(num_classes, backbone=MobileSeg_Tiny(inj_type='AAM', "
                         "out_feat_chs=[32, 64, 128]), upsample=UPSAMPLE)",
    "pp_mobileseg_base": "PPMobileSeg(num_classes, backbone=MobileSeg_Base(inj_type='AAMSx8', "
                         "out_feat_chs=[64, 128, 192]), upsample=UPSAMPLE)",
    "pp_liteseg_t": "PPLiteSeg(num_classes, backbone=STDC1(), arm_out_chs=[32, 64, 128], "
                    "seg_head_inter_chs=[32, 64, 64])",
    "pp_liteseg_b": "PPLiteSeg(num_classes, backbone=STDC2())",
    "pp_humanseg_lite_v1": "PPHumanSegLite(num_classes, align_corners=False)",
    "pp_humansegv2_lite_general": "MobileSeg(num_classes, backbone=MobileNetV3_large_x1_0(), cm_bin_sizes=[1, 2, 4], "
                                  "backbone_indices=[0, 1, 2, 3], cm_out_ch=128, arm_out_chs=[32, 64, 96, 128], "
                                  "seg_head_inter_chs=[16, 32, 32, 32], use_last_fuse=True)",
    "pp_humansegv2_lite_portrait": "MobileSeg(num_classes, backbone=MobileNetV3_large_x1_0(), cm_bin_sizes=[1, 2, 4], "
                                   "backbone_indices=[0, 1, 2], cm_out_ch=128, arm_out_chs=[32, 64, 128], "
                                   "seg_head_inter_chs=[16, 32, 32], use_last_fuse=True)",
    "pp_humansegv2_mobile": "PPLiteSeg(num_classes, backbone=STDC1(), cm_out_ch=128, backbone_indices=[1, 2, 3, 4], "
                            "arm_out_chs=[4, 16, 32, 64], seg_head_inter_chs=[4, 16, 32, 64])",
}
#: model kwargs the reference call takes from elsewhere (besides the training-only ones,
#: :func:`ppseg.registry.training_only_kwargs`): the mapping still holds with any value
_REFERENCE_NEUTRAL_KWARGS = ("num_classes", "aam_gate_act", "in_channels")
#: reference models with the VIM post-processing (``upsample="vim"``)
_PADDLE_VIM = ("pp_mobileseg_tiny", "pp_mobileseg_base")


def paddle_available() -> bool:
    """``paddle`` and ``paddleseg`` are installed (not imported here: that takes seconds)."""
    return all(importlib.util.find_spec(m) is not None for m in ("paddle", "paddleseg"))


def paddle_reference(cfg: BenchConfig) -> tuple[str | None, str]:
    """(the reference constructor call, or None) and why not."""
    if cfg.model not in PADDLE_REFERENCE:
        return None, f"no PaddleSeg reference mapping for {cfg.model}"
    from ..registry import training_only_kwargs

    neutral = _REFERENCE_NEUTRAL_KWARGS + training_only_kwargs(cfg.model)
    odd = sorted(k for k in cfg.model_kwargs if k not in neutral)
    if odd:
        return None, f"no reference mapping for {cfg.model} with {', '.join(odd)}"
    if cfg.output_op == "vim" and cfg.model not in _PADDLE_VIM:
        return None, f"the reference {cfg.model.split('_')[0]} model has no VIM"
    return PADDLE_REFERENCE[cfg.model], ""


def _paddle_case(job: dict[str, Any], images: np.ndarray) -> tuple[Callable[[], Any], dict[str, Any]]:
    import paddle

    paddle.set_device("cpu")
    for setter in ("set_num_threads",):  # paddle.base.core / paddle.fluid.core, depending on the version
        for mod in ("base", "fluid"):
            core = getattr(getattr(paddle, mod, None), "core", None)
            if core is not None and hasattr(core, setter):
                getattr(core, setter)(job["threads"])
                break
    if job.get("paddle_mkldnn"):  # off by default: measured no faster for these models in dygraph
        paddle.set_flags({"FLAGS_use_mkldnn": True})
    from paddleseg.models import MobileSeg, PPHumanSegLite, PPLiteSeg, PPMobileSeg  # noqa: F401
    from paddleseg.models.backbones import (MobileNetV3_large_x1_0, MobileSeg_Base, MobileSeg_Tiny,  # noqa: F401
                                            STDC1, STDC2)

    vim_op = job["output_op"] == "vim"
    env = {k: v for k, v in locals().items() if k[:1].isupper()}
    env.update(num_classes=int(job["num_classes"]), UPSAMPLE="vim" if vim_op else "intepolate")
    paddle.seed(0)
    model = eval(job["paddle_call"], {"__builtins__": {}}, env)  # noqa: S307 - our own constant table
    model.eval()
    params = sum(int(np.prod(p.shape)) for n, p in model.named_parameters()
                 if not n.endswith(("_mean", "_variance")))
    mean = paddle.to_tensor(np.asarray(job["mean"], np.float32).reshape(1, 3, 1, 1) * 255.0)
    std = paddle.to_tensor(np.asarray(job["std"], np.float32).reshape(1, 3, 1, 1) * 255.0)

    def run() -> np.ndarray:
        with paddle.no_grad():
            x = paddle.to_tensor(images).transpose([0, 3, 1, 2]).astype("float32")
            out = model((x - mean) / std)[0]
            if out.ndim == 4:  # logits (VIM only applies to >= 30 classes in the reference)
                out = paddle.argmax(out, axis=1)
            return out.astype("uint8" if int(env["num_classes"]) <= 256 else "int32").numpy()

    import paddleseg

    return run, {"version": f"paddle {paddle.__version__}, paddleseg {paddleseg.__version__}", "params": params}
