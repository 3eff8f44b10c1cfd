"""User-facing errors.

Every problem caused by the user's input (a config key, a file, a value) is raised
as :class:`PPSegError` with one line that names the offending file, key or value.
The CLI prints that line and exits with code 1; it never shows a traceback for
these.
"""

from __future__ import annotations


class PPSegError(Exception):
    """An error in the user's input, reported as a single clear line."""


class ConfigError(PPSegError):
    """A config file, key or value is wrong."""


class DataError(PPSegError):
    """A dataset file is missing, unreadable or inconsistent."""
