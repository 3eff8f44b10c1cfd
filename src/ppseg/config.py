"""YAML configs: ``_base_`` inheritance, ``--opts`` overrides, and validation.

A config is a plain nested dict read from YAML. Every section maps 1:1 onto the
keyword arguments of one constructor (a model factory, a dataset class, an
optimizer...). Nothing is resolved through hidden registries: each section that
names a ``type`` looks it up in an explicit ``name -> callable`` table passed by
the caller.

Errors name the file the key came from, the dotted key, and what is allowed::

    configs/camvid.yml: optimizer.lerning_rate: unknown key; did you mean 'learning_rate'?
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml

from .errors import ConfigError
from .fileio import read_utf8

BASE_KEY = "_base_"
NO_INHERIT_KEY = "_inherited_"


class Config(dict):
    """A loaded config: a plain dict plus where each key came from.

    Attributes:
        path: the top-level config file.
        sources: dotted key -> file (or ``--opts``) that last set it.
    """

    def __init__(self, data: Mapping[str, Any], path: str, sources: dict[str, str]):
        super().__init__(data)
        self.path = path
        self.sources = sources

    def source_of(self, dotted: str) -> str:
        """The file that set ``dotted`` (or its closest parent key)."""
        key = dotted
        while key:
            if key in self.sources:
                return self.sources[key]
            key = key.rpartition(".")[0]
        return self.path

    def where(self, dotted: str) -> str:
        source = self.source_of(dotted)
        return f"{source}: {dotted}" if source else dotted


# ----------------------------------------------------------------------------- loading


#: a config file larger than this is refused before parsing
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: a config whose values, with every YAML alias expanded, number more than this is refused
MAX_CONFIG_VALUES = 1_000_000


def _expanded_size(value: Any, limit: int, memo: dict[int, int] | None = None) -> int:
    """How many values ``value`` holds with shared (aliased) nodes counted at every use;
    stops counting past ``limit``. YAML aliases are shared, so this stays cheap."""
    memo = {} if memo is None else memo
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) in memo:
        return memo[id(value)]
    memo[id(value)] = limit + 1  # a cycle counts as too large
    items = list(value.values()) if isinstance(value, dict) else value
    total = 1
    for v in items:
        total += _expanded_size(v, limit, memo)
        if total > limit:
            break
    memo[id(value)] = total
    return total


def _read_yaml(path: Path) -> dict:
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = read_utf8(path, "config", ConfigError, max_bytes=MAX_CONFIG_BYTES, at_line="{path} (line {line})")
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        too_big = _expanded_size(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if too_big:
        raise ConfigError(f"{path}: the config expands to more than {MAX_CONFIG_VALUES:,} values "
                          "(YAML aliases nested into a 'billion laughs'?); write it out plainly")
    return data


def _record(sources: dict[str, str], data: Any, prefix: str, origin: str) -> None:
    if isinstance(data, dict):
        for k, v in data.items():
            if k == NO_INHERIT_KEY:
                continue
            key = f"{prefix}.{k}" if prefix else str(k)
            sources[key] = origin
            _record(sources, v, key, origin)


def _strip_inherit(value: Any) -> Any:
    """A deep copy of ``value`` without ``_inherited_`` markers at any depth."""
    if isinstance(value, dict):
        return {k: _strip_inherit(v) for k, v in value.items() if k != NO_INHERIT_KEY}
    if isinstance(value, list):
        return [_strip_inherit(v) for v in value]
    return copy.deepcopy(value)


def _merge(base: dict, over: dict, sources: dict[str, str], prefix: str, origins: Mapping[str, str],
           fallback: str) -> dict:
    """Deep-merge ``over`` into ``base`` (dicts merge, everything else replaces).

    ``sources`` (dotted key -> file) describes ``base`` and is updated in place;
    ``origins`` describes ``over`` (keys it lacks are attributed to ``fallback``).
    A section with ``_inherited_: false`` replaces the base section whole.
    """
    out = dict(base)
    for k, v in over.items():
        if k == NO_INHERIT_KEY:
            continue
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and isinstance(out.get(k), dict) and v.get(NO_INHERIT_KEY, True):
            out[k] = _merge(out[k], v, sources, key, origins, fallback)
        else:
            out[k] = _strip_inherit(v)
            for s in [s for s in sources if s.startswith(key + ".")]:
                del sources[s]
            if isinstance(out[k], dict):
                own: dict[str, str] = {}
                _record(own, out[k], key, fallback)
                for s in own:
                    sources[s] = origins.get(s, fallback)
        sources[key] = origins.get(key, fallback)
    return out


def _load_recursive(path: Path, chain: tuple[Path, ...]) -> tuple[dict, dict[str, str]]:
    """The merged data of ``path`` and its ``_base_`` chain, and where each key came from."""
    if path.resolve() in chain:
        names = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"{path}: circular _base_ inheritance: {names}")
    data = _read_yaml(path)
    bases = data.pop(BASE_KEY, None)
    merged: dict = {}
    sources: dict[str, str] = {}
    if bases is not None:
        if isinstance(bases, str):
            bases = [bases]
        if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
            raise ConfigError(f"{path}: {BASE_KEY} must be a file path or a list of paths")
        for b in bases:
            base_path = (path.parent / b) if not Path(b).is_absolute() else Path(b)
            if not base_path.is_file():
                raise ConfigError(f"{path}: {BASE_KEY} file '{b}' not found (looked at {base_path})")
            base_data, base_sources = _load_recursive(base_path, (*chain, path.resolve()))
            merged = _merge(merged, base_data, sources, "", base_sources, str(base_path))
    own: dict[str, str] = {}
    _record(own, data, "", str(path))
    return _merge(merged, data, sources, "", own, str(path)), sources


def parse_opts(opts: list[str] | None) -> list[tuple[str, Any]]:
    """Parse ``key.sub=value`` overrides; values are read as YAML (``1e-3``, ``[1, 2]``, ``true``)."""
    out = []
    for item in opts or []:
        if "=" not in item:
            raise ConfigError(f"--opts: '{item}' is not of the form key=value (e.g. iters=1000)")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--opts: '{item}' has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out.append((key, value))
    return out


def load_config(path: str | Path, opts: list[str] | None = None) -> Config:
    """Read a YAML config with its ``_base_`` chain and apply ``--opts`` overrides."""
    path = Path(path)
    data, sources = _load_recursive(path, ())
    for key, value in parse_opts(opts):
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
                sources[".".join(parts[: i + 1])] = "--opts"
            if not isinstance(nxt, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"--opts: cannot set '{key}': '{where}' is a {type(nxt).__name__}, not a section")
            node = nxt
        node[parts[-1]] = value
        for s in [s for s in sources if s.startswith(key + ".")]:
            del sources[s]  # a replaced section's old keys are gone
        sources[key] = "--opts"
        _record(sources, value, key, "--opts")
    return Config(data, str(path), sources)


def dump_config(cfg: Mapping[str, Any]) -> str:
    """The resolved config as YAML (what a run directory stores)."""

    def plain(x: Any) -> Any:
        if isinstance(x, Mapping):
            return {str(k): plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    return yaml.safe_dump(plain(cfg), sort_keys=False, default_flow_style=None)


# ----------------------------------------------------------------------------- validation


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f" (allowed: {', '.join(sorted(choices))})" if choices else ""


def check_keys(section: Mapping[str, Any], allowed: typing.Iterable[str], cfg: Config, prefix: str) -> None:
    """Raise on the first key of ``section`` that is not in ``allowed``."""
    allowed = list(allowed)
    for k in section:
        if k not in allowed:
            where = cfg.where(f"{prefix}.{k}" if prefix else str(k))
            raise ConfigError(f"{where}: unknown key{did_you_mean(str(k), allowed)}")


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        args = get_args(tp)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(_type_name(a) for a in args if a is not Ellipsis)}]" if args else name
    return getattr(tp, "__name__", str(tp))


_NO = object()


def is_finite_number(value: Any) -> bool:
    """An ``int`` or ``float`` that is neither NaN nor infinite (``bool`` is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number_in_range(value: Any, lo: float, hi: float) -> float | None:
    """``float(value)`` when it is finite and in ``[lo, hi]`` (numeric strings too), else ``None``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and lo <= out <= hi else None


def is_non_finite(value: Any) -> bool:
    """Whether ``value`` is a NaN or infinite number, at any depth of a list (``.nan``, ``"inf"``, ``[1, .nan]``)."""
    if isinstance(value, (list, tuple)):
        return any(is_non_finite(v) for v in value)
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, (int, float)) and not math.isfinite(value)


def not_finite_note(value: Any) -> str:
    """A note for an error about a NaN / infinite ``value`` (``" (numbers must be finite: ...)"``), else ``""``."""
    return " (numbers must be finite: not NaN or infinite)" if is_non_finite(value) else ""


def coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` converted to ``tp`` where that is lossless, else ``_NO``.

    A ``float`` must be finite (NaN and infinities are refused). Handles
    ``int``/``float``/``bool``/``str``, ``Literal``, ``Optional``/unions,
    ``list[...]``/``tuple[...]``/``Sequence`` and ``dict``. Unknown annotations
    (modules, callables) accept anything: their own constructors check them.
    """
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if tp is type(None):
        return None if value is None else _NO
    origin = get_origin(tp)
    if origin is Literal:
        args = get_args(tp)
        if isinstance(value, bool):
            if any(a is value for a in args):
                return value
            # YAML 1.1 reads on/off/yes/no/true/false as booleans: map them back to the spelled choice
            words = ("on", "yes", "true") if value else ("off", "no", "false")
            return next((a for a in args if isinstance(a, str) and a.lower() in words), _NO)
        return value if value in args else _NO
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            got = coerce(value, arg)
            if got is not _NO:
                return got
        return _NO
    if tp is bool:
        return value if isinstance(value, bool) else _NO
    if tp is int:
        if isinstance(value, bool):
            return _NO
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return _NO
    if tp is float:  # finite numbers only: a NaN or infinite setting is a typo that fails much later
        if isinstance(value, bool):
            return _NO
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                out = float(value)
            except ValueError:
                return _NO
        else:
            return _NO
        return out if math.isfinite(out) else _NO
    if tp is str:
        return value if isinstance(value, str) else _NO
    if origin in (list, tuple, typing.Sequence, __import__("collections.abc").abc.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return _NO
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return _NO
            items = [coerce(v, a) for v, a in zip(value, args)]
        else:
            inner = args[0] if args else Any
            items = [coerce(v, inner) for v in value]
        if any(i is _NO for i in items):
            return _NO
        return tuple(items) if (origin is tuple or tp is tuple) else list(items)
    if origin is dict or tp is dict:
        return value if isinstance(value, dict) else _NO
    return value


def signature_params(fn: Callable) -> dict[str, tuple[Any, Any]]:
    """``name -> (annotation, default)`` for the keyword arguments of ``fn``.

    Where the signature ends in ``**kwargs``, the parameters of where they go are
    added: a ``__forwards_to__`` attribute (a class), or for a class its base class.
    """
    target = fn.__init__ if inspect.isclass(fn) else fn
    hints: dict[str, Any] = {}
    for source in ((fn, target) if inspect.isclass(fn) else (target,)):
        try:  # dataclasses keep their field types on the class
            hints.update(typing.get_type_hints(source))
        except Exception:  # unresolvable forward references: keep the raw annotations
            pass
    out: dict[str, tuple[Any, Any]] = {}
    var_kw = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL,):
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
            continue
        if p.name == "self":
            continue
        out[p.name] = (hints.get(p.name, p.annotation), p.default)
    if var_kw:
        forwards = getattr(fn, "__forwards_to__", None)
        if forwards is None and inspect.isclass(fn):  # **kwargs of a subclass go to its base class
            forwards = next((b for b in fn.__mro__[1:] if "__init__" in vars(b) and b is not object), None)
        if forwards is not None:
            for name, spec in signature_params(forwards).items():
                out.setdefault(name, spec)
    return out


def build_kwargs(
    spec: Mapping[str, Any],
    fn: Callable,
    cfg: Config,
    prefix: str,
    *,
    exclude: typing.Iterable[str] = (),
    builders: Mapping[str, Callable[[Any, str], Any]] | None = None,
    required: bool = True,
) -> dict[str, Any]:
    """Validate ``spec`` against ``fn``'s signature and return converted kwargs.

    Args:
        spec: the config section (without ``type``).
        fn: class or factory the section maps onto.
        cfg: the loaded config, for error locations.
        prefix: dotted key of the section, e.g. ``"optimizer"``.
        exclude: parameters the caller fills itself (not allowed in the section).
        builders: per-key functions ``(value, dotted_key) -> object`` for nested
            sections (e.g. ``transforms``), applied instead of type coercion.
        required: raise when a parameter without a default is missing.
    """
    params = {k: v for k, v in signature_params(fn).items() if k not in set(exclude)}
    builders = builders or {}
    check_keys(spec, params, cfg, prefix)
    out: dict[str, Any] = {}
    for name, value in spec.items():
        key = f"{prefix}.{name}"
        if name in builders:
            out[name] = builders[name](value, key)
            continue
        tp, default = params[name]
        got = coerce(value, tp)
        if got is _NO:
            raise ConfigError(f"{cfg.where(key)}: expected {_type_name(tp)}, got {value!r}{not_finite_note(value)}")
        out[name] = got
    missing = [n for n, (_, d) in params.items() if d is inspect.Parameter.empty and n not in out]
    if missing and required:
        raise ConfigError(f"{cfg.where(prefix)}: missing required key '{missing[0]}'")
    return out


def build_typed(
    spec: Any,
    table: Mapping[str, Callable],
    cfg: Config,
    prefix: str,
    *,
    extra: Mapping[str, Any] | None = None,
    builders: Mapping[str, Callable[[Any, str], Any]] | None = None,
) -> Any:
    """Build ``table[spec['type']](**validated kwargs, **extra)``.

    Constructor errors that are about the user's values (``ValueError``,
    ``ConfigError``) are re-raised with the section's location.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{cfg.where(prefix)}: expected a section with a 'type' key, got {spec!r}")
    if "type" not in spec:
        raise ConfigError(f"{cfg.where(prefix)}: missing 'type' (one of: {', '.join(sorted(table))})")
    name = spec["type"]
    if not isinstance(name, str) or name not in table:
        raise ConfigError(f"{cfg.where(prefix + '.type')}: unknown type '{name}'{did_you_mean(str(name), table)}")
    fn = table[name]
    body = {k: v for k, v in spec.items() if k != "type"}
    kwargs = build_kwargs(body, fn, cfg, prefix, exclude=(extra or {}).keys(), builders=builders)
    try:
        return fn(**kwargs, **(extra or {}))
    except ConfigError as e:
        raise ConfigError(f"{cfg.where(prefix)}: {e}") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{cfg.where(prefix)}: {name}: {e}") from None


#: the most classes a model, dataset or weights file may have (label maps are written as 8- or 16-bit PNGs)
MAX_CLASSES = 65535

#: sizes an ``--input-shape`` may take: a batch of at most 256, sides from 32 to 8192 pixels
INPUT_SHAPE_LIMITS = {"batch": (1, 256), "side": (32, 8192)}


def check_input_shape(shape: Any, option: str = "--input-shape") -> tuple[int, int, int, int]:
    """``N 3 H W`` with a sane batch and sides (:data:`INPUT_SHAPE_LIMITS`), or a :class:`ConfigError`
    naming ``option``: a 1x1 or 100000x100000 input is a typo, not a model input."""
    try:
        values = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: expected four integers N 3 H W, got {shape!r}") from None
    (bmin, bmax), (smin, smax) = INPUT_SHAPE_LIMITS["batch"], INPUT_SHAPE_LIMITS["side"]
    if len(values) != 4 or values[1] != 3:
        raise ConfigError(f"{option}: expected N 3 H W (3 colour channels), got {list(values)}")
    n, _, h, w = values
    if not bmin <= n <= bmax:
        raise ConfigError(f"{option}: batch N={n} must be in [{bmin}, {bmax}]")
    for name, v in (("H", h), ("W", w)):
        if not smin <= v <= smax:
            raise ConfigError(f"{option}: {name}={v} must be in [{smin}, {smax}] pixels")
    return values  # type: ignore[return-value]
