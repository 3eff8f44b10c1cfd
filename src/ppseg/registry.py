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

from .config import coerce, did_you_mean, signature_params, _NO, _type_name
from .errors import ConfigError
from .models import lraspp, pp_humanseg, pp_liteseg, pp_mobileseg

MODELS: dict[str, Callable[..., nn.Module]] = {
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


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in MODELS if fnmatch.fnmatch(n, pattern))


def get_factory(name: str) -> Callable[..., nn.Module]:
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


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown or ill-typed kwargs raise :class:`ConfigError`."""
    factory = get_factory(name)
    params = signature_params(factory)
    for key, value in list(kwargs.items()):
        if key not in params:
            raise ConfigError(f"model '{name}' has no argument '{key}'{did_you_mean(key, params)}")
        tp, _ = params[key]
        got = coerce(value, tp)
        if got is _NO:
            raise ConfigError(f"model '{name}': argument '{key}' expects {_type_name(tp)}, got {value!r}")
        kwargs[key] = got
    return factory(**kwargs)
