"""User-facing errors, and which one library code raises.

Every problem caused by the user's input (a config key, a file, a value) is raised as a
:class:`PPSegError` with one line that names the offending argument, file or value. The
CLI prints that line and exits with code 1; it never shows a traceback for these.

Policy:

* **A setting is wrong** -> :class:`ConfigError`. A constructor, factory or function
  argument the user chose (a value out of range, an unknown name, a wrong type), or
  settings that do not fit each other or the model (three class weights for two logit
  channels, more model outputs than loss entries). The fix is to change a setting.
  ``ConfigError`` is also a :class:`ValueError`, so callers that catch ``ValueError``
  around a constructor keep working.
* **The data passed at call time is wrong** -> plain :class:`ValueError` (or
  ``TypeError``): a tensor of the wrong rank or shape, a batch-size mismatch, label
  values outside the classes. Also programming errors inside the library.
* **A file on disk is wrong** -> :class:`DataError`: a dataset image, label or list file
  is missing, unreadable or inconsistent. It is *not* a ``ValueError``: the arguments were
  fine and the same call succeeds once the file is fixed, and code that catches
  ``ValueError`` around a computation (or a decoder's own ``ValueError``, as the image
  readers do to re-raise it as ``DataError``) must not swallow a broken dataset.

Messages are API-neutral: library code (models, losses, transforms, optimizers,
schedules, the segmentor) speaks about its own arguments, in Python terms
(``thresh must be a number in [0, 1], got 2``; ``None``, ``True``/``False``), never about
config files, YAML keys or YAML syntax. The config builder (:mod:`ppseg.engine.build`,
:mod:`ppseg.config`) catches ``ConfigError`` / ``ValueError`` / ``TypeError`` from the
constructors it calls and prefixes the location, ``file.yml: loss.types[0]: ...``; CLI
code names its own options (``--threads must be ...``).
"""

from __future__ import annotations


class PPSegError(Exception):
    """An error in the user's input, reported as a single clear line."""


class ConfigError(PPSegError, ValueError):
    """A setting (config value, constructor or function argument) is wrong; also a ``ValueError``."""


class DataError(PPSegError):
    """A dataset file is missing, unreadable or inconsistent (not a ``ValueError``: see the module docstring)."""
