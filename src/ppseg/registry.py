"""The model registry: an explicit ``name -> factory`` table.

No decorators and no import side effects: every model the CLI can build is
listed here, next to the factory function that builds it. Use the factories
directly from Python, or by name::

    import ppseg
    model = ppseg.create_model("lraspp_mobilenetv3_large", num_classes=11)
    ppseg.list_models("lraspp*")
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

from .config import MAX_CLASSES, coerce, did_you_mean, not_finite_note, signature_params, _NO, _type_name
from .errors import ConfigError
from .models import click_net, edgeflow, lraspp, pp_humanseg, pp_liteseg, pp_matting, pp_mattingv2, pp_mobileseg

MODELS: dict[str, Callable[..., nn.Module]] = {
    "edgeflow_hrnet18_ocr64": edgeflow.edgeflow_hrnet18_ocr64,
    "click_mobilenetv3_lite": click_net.click_mobilenetv3_lite,
    "pp_matting_hrnet_w18": pp_matting.pp_matting_hrnet_w18,
    "pp_matting_hrnet_w48": pp_matting.pp_matting_hrnet_w48,
    "pp_mattingv2_stdc1": pp_mattingv2.pp_mattingv2_stdc1,
    "lraspp_mobilenetv3_large": lraspp.lraspp_mobilenetv3_large,
    "lraspp_mobilenetv3_small": lraspp.lraspp_mobilenetv3_small,
    "pp_humanseg_lite_v1": pp_humanseg.pp_humanseg_lite_v1,
    "pp_humansegv2_lite_general": pp_humanseg.pp_humansegv2_lite_general,
    "pp_humansegv2_lite_portrait": pp_humanseg.pp_humansegv2_lite_portrait,
    "pp_humansegv2_mobile": pp_humanseg.pp_humansegv2_mobile,
    "pp_liteseg_b": pp_liteseg.pp_liteseg_b,
    "pp_liteseg_t": pp_liteseg.pp_liteseg_t,
    "pp_mobileseg_base": pp_mobileseg.pp_mobileseg_base,
    "pp_mobileseg_tiny": pp_mobileseg.pp_mobileseg_tiny,
}


def model_task(name: str) -> str:
    """The task a registered model is for: ``TASK`` of its module (``"interactive"`` for click
    models, whose forward takes ``(image, coord_features)``), else ``"semantic"``."""
    import sys

    return str(getattr(sys.modules[get_factory(name).__module__], "TASK", "semantic"))


def list_models(pattern: str = "*", task: str | None = None) -> list[str]:
    """Registered model names matching a shell-style pattern (and ``task``, when given), sorted."""
    return sorted(n for n in MODELS if fnmatch.fnmatch(n, pattern) and (task is None or model_task(n) == task))


def get_factory(name: str) -> Callable[..., nn.Module]:
    if not isinstance(name, str):
        raise ConfigError(f"a model name must be a string (one of {', '.join(MODELS)}), got {name!r}")
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'{did_you_mean(name, MODELS)}")
    return MODELS[name]


def training_only_kwargs(name: str) -> tuple[str, ...]:
    """The factory kwargs of model ``name`` that change only training (dropout, auxiliary heads).

    Declared once, beside the factories, as ``TRAINING_ONLY_KWARGS`` in the model's module;
    every other kwarg may change what the model computes at inference."""
    import sys

    module = sys.modules[get_factory(name).__module__]
    return tuple(getattr(module, "TRAINING_ONLY_KWARGS", ()))


#: the largest integer argument (a class or channel count) a registered factory is built with
MAX_COUNT = 65535


def check_model_kwargs(name: str, kwargs: dict) -> dict:
    """``kwargs`` of model ``name`` checked and converted (a new dict), or a :class:`ConfigError`
    naming the argument: unknown names, wrong types, non-finite numbers, and integer arguments
    outside [1, 65535] (every integer argument of a registered factory is a count of classes or
    channels: 0 builds a model that fails at its first forward, -5 or 10**9 fail in torch)."""
    factory = get_factory(name)
    params = signature_params(factory)
    out = dict(kwargs)
    for key, value in kwargs.items():
        if key not in params:
            raise ConfigError(f"model '{name}' has no argument '{key}'{did_you_mean(key, params)}")
        tp, _ = params[key]
        got = coerce(value, tp)
        if got is _NO:
            raise ConfigError(f"model '{name}': argument '{key}' expects {_type_name(tp)}, got {value!r}"
                              f"{not_finite_note(value)}")
        if tp is int:
            top = MAX_CLASSES if key == "num_classes" else MAX_COUNT
            if not 1 <= got <= top:
                raise ConfigError(f"model '{name}': argument '{key}' must be an integer in [1, {top}], got {got!r}")
        out[key] = got
    return out


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown, ill-typed or absurd kwargs raise :class:`ConfigError`
    (:func:`check_model_kwargs`), and so does a model torch cannot build from them."""
    factory = get_factory(name)
    kwargs = check_model_kwargs(name, kwargs)
    try:
        return factory(**kwargs)
    except ConfigError:
        raise
    except ValueError as e:  # torch's own checks, e.g. "dropout probability has to be between 0 and 1"
        raise ConfigError(f"model '{name}': {e}") from None
    except RuntimeError as e:  # torch refusing the sizes these arguments give (negative, or too large)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "can't allocate memory" in first or "out of memory" in first.lower():
            first = "out of memory"
        raise ConfigError(f"model '{name}' cannot be built with {kwargs}: {first[:200]}") from None
