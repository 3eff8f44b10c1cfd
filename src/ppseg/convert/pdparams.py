"""Read PaddlePaddle ``.pdparams`` checkpoints without paddle, and without running their code.

A ``.pdparams`` file (``paddle.save(model.state_dict())``, or the older
``fluid.save_dygraph``) is a Python pickle of ``{structured name: numpy array}``
plus one bookkeeping entry, ``StructuredToParameterName@@`` (structured name ->
Paddle's internal parameter name, e.g. ``conv2d_0.w_0``; the numbering is
arbitrary and is dropped here).

A pickle can name any importable callable and call it while loading, so a
plain ``pickle.load`` of a downloaded file can run arbitrary code. This reader
uses an unpickler that resolves only the handful of globals numpy arrays need
(numpy's array reconstructor, ``ndarray`` as its argument, ``dtype``; for
protocol-2 files the latin-1 and empty ``bytes`` constructors; for protocol 5
numpy's raw-buffer constructor), each behind a wrapper that accepts only the
arguments numpy itself writes. Every other global is refused
before anything is called::

    x.pdparams: refused to load: the pickle asks for 'os.system', which a checkpoint never needs

After loading, the content is validated: a dict of non-empty ``str`` keys to
numeric numpy arrays, plus the optional bookkeeping dict of ``str -> str``.

Example:
    >>> from ppseg.convert.pdparams import read_pdparams
    >>> arrays = read_pdparams("model.pdparams")      # {name: np.ndarray}
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import PPSegError

__all__ = ["BOOKKEEPING_KEY", "read_pdparams", "load_pdparams_pickle", "is_pickle_file"]

BOOKKEEPING_KEY = "StructuredToParameterName@@"
# written by paddle.save(protocol=2/3) when a tensor is too big for one pickle entry
_SPLIT_KEY = "UnpackBigParamInfor@@"
_NUMERIC_KINDS = "biuf"  # bool, signed/unsigned int, float

# The real numpy functions, taken from objects rather than by importing
# ``numpy.core`` (renamed ``numpy._core`` in numpy 2, old name deprecated).
_real_reconstruct: Callable[..., np.ndarray] = np.ndarray.__reduce__(np.zeros(0))[0]  # type: ignore[index]


class _NdarrayClass:
    """Stands in for ``numpy.ndarray`` inside the pickle.

    The only legitimate use of ``numpy.ndarray`` in a checkpoint pickle is as the
    first argument of the array reconstructor; handing out a non-callable token
    instead of the class means the pickle cannot call ``ndarray(...)`` itself
    (e.g. to allocate a huge buffer).
    """

    __slots__ = ()

    def __repr__(self) -> str:  # pragma: no cover - only shows up in error messages
        return "numpy.ndarray"


_NDARRAY = _NdarrayClass()


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    # numpy always writes _reconstruct(ndarray, (0,), b'b') and fills the array in __setstate__
    if cls is not _NDARRAY or tuple(shape) != (0,) or not isinstance(typecode, (bytes, str)) or len(typecode) != 1:
        raise pickle.UnpicklingError(f"unexpected array reconstruction arguments ({shape!r}, {typecode!r})")
    return _real_reconstruct(np.ndarray, (0,), typecode)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    # numpy writes dtype('f4', False, True) and sets byte order etc. in __setstate__
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise pickle.UnpicklingError(f"unexpected dtype arguments ({spec!r}, {align!r}, {copy!r})")
    return np.dtype(spec, align, copy)


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    # protocol 2 has no bytes opcode under Python 3: bytes are written as _codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected _codecs.encode arguments (encoding {encoding!r})")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    # protocol 2 writes b'' as a call of bytes() with no arguments (zero-size arrays)
    if args:
        raise pickle.UnpicklingError("unexpected bytes() arguments")
    return b""


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # protocol 5 (numpy's in-band buffer path): raw bytes + dtype + shape + order
    if (not isinstance(buf, (bytes, bytearray)) or not isinstance(dtype, np.dtype) or not isinstance(shape, tuple)
            or not all(isinstance(s, int) and s >= 0 for s in shape) or order not in ("C", "F")
            or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(buf)):
        raise pickle.UnpicklingError("unexpected array buffer arguments")
    return np.frombuffer(bytearray(buf) if isinstance(buf, bytes) else buf, dtype=dtype).reshape(shape, order=order)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1.x writers
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2.x writers
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class _Refused(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals listed in ``_ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"the pickle asks for '{module}.{name}', which a checkpoint never needs") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("the pickle uses a persistent id (a PyTorch-style file?), which a .pdparams never has")


def is_pickle_file(path: str | Path) -> bool:
    """True when the file starts like a plain pickle (protocol 2+; not a zip archive)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def load_pdparams_pickle(f: BinaryIO, name: str) -> dict[str, Any]:
    """Unpickle ``f`` with the restricted unpickler and validate it; ``name`` prefixes errors.

    Returns the raw dict (arrays and, if present, the bookkeeping entry).
    """
    try:
        obj = _RestrictedUnpickler(f).load()
    except _Refused as e:
        raise PPSegError(f"{name}: refused to load: {e.what}") from None
    except PPSegError:
        raise
    except MemoryError:
        raise PPSegError(f"{name}: not a readable .pdparams file (it asks for more memory than is available)") from None
    except Exception as e:  # noqa: BLE001 - truncated or garbage: any unpickling error is the file's fault
        raise PPSegError(f"{name}: not a readable .pdparams file ({_describe_unpickling_error(e, f)})") from None
    _validate(obj, name)
    return obj


def _describe_unpickling_error(e: Exception, f: BinaryIO) -> str:
    if isinstance(e, EOFError) or "truncated" in str(e) or "ran out of input" in str(e).lower():
        return "the file is truncated"
    msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
    try:
        f.seek(0)
        head = f.read(4)
    except Exception:  # noqa: BLE001
        head = b""
    if head.startswith(b"PK"):
        return "it is a zip archive, e.g. a PyTorch .pth or ppseg weights file, not a .pdparams pickle"
    return f"not a pickle, or damaged: {msg}"


def _validate(obj: Any, name: str) -> None:
    if not isinstance(obj, dict):
        raise PPSegError(f"{name}: not a .pdparams state dict (the pickle holds a {type(obj).__name__}, "
                         "expected a dict of parameter name -> array)")
    if not obj:
        raise PPSegError(f"{name}: the checkpoint holds no parameters (an empty dict)")
    if _SPLIT_KEY in obj:
        raise PPSegError(f"{name}: the checkpoint splits big parameters into slices ('{_SPLIT_KEY}', written by "
                         "paddle.save with protocol 2/3); re-save it with protocol=4")
    for key, value in obj.items():
        if not isinstance(key, str) or not key:
            raise PPSegError(f"{name}: not a .pdparams state dict (key {key!r} is not a parameter name)")
        if key == BOOKKEEPING_KEY:
            if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in value.items()):
                raise PPSegError(f"{name}: entry '{BOOKKEEPING_KEY}' is not a dict of str -> str")
            continue
        if not isinstance(value, np.ndarray):
            hint = " (a .pdopt optimizer file? convert the .pdparams)" if key == "LR_Scheduler" else ""
            raise PPSegError(f"{name}: entry '{key}' is a {type(value).__name__}, not an array{hint}")
        if value.dtype.kind not in _NUMERIC_KINDS:
            raise PPSegError(f"{name}: entry '{key}' has dtype {value.dtype}, not a numeric array")
    if all(k == BOOKKEEPING_KEY for k in obj):
        raise PPSegError(f"{name}: the checkpoint holds no parameters (only '{BOOKKEEPING_KEY}')")


def read_pdparams(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``.pdparams`` file, ``{structured name: np.ndarray}`` in file order.

    The bookkeeping entry ``StructuredToParameterName@@`` is validated and dropped.
    Raises :class:`PPSegError` (one line naming the file) for a missing, truncated,
    malicious or non-state-dict file.
    """
    path = Path(path)
    if not path.is_file():
        raise PPSegError(f"{path}: checkpoint file not found")
    data = path.read_bytes()
    obj = load_pdparams_pickle(io.BytesIO(data), str(path))
    return {k: v for k, v in obj.items() if k != BOOKKEEPING_KEY}
