"""Atomic file writes (a reader, or a kill, never sees a half-written file) and output-path checks
made before any work starts."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Literal

from .errors import PPSegError


@contextmanager
def atomic_open(path: str | Path, fsync: bool = True) -> Iterator[BinaryIO]:
    """Open a temp file next to ``path`` for binary writing; rename it over ``path`` on success.

    On any exception the temp file is removed and ``path`` is left as it was.
    The file gets the usual umask-based mode (``tempfile.mkstemp`` would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_folder(stage: str | Path, target: str | Path) -> None:
    """Put the finished folder ``stage`` in place of ``target`` (its sibling): an old ``target`` is
    renamed aside, ``stage`` renamed in, and the old one deleted; if the second rename fails the old
    folder is put back. A reader sees the old folder or the new one, never a mix or nothing for
    long. Raises the ``OSError`` of a rename that failed (the caller words it)."""
    import shutil

    stage, target = Path(stage), Path(target)
    old = None
    if target.exists() or target.is_symlink():
        old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
        os.replace(target, old)
    try:
        os.replace(stage, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files :func:`atomic_open` left in ``folder`` when its process was killed
    (``.<name>.<pid>.<hex>.tmp`` whose pid no longer runs); returns what was removed."""
    import re

    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.glob(".*.tmp"):
        m = re.fullmatch(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp", p.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_utf8(path: str | Path, what: str, error: type[Exception], *, max_bytes: int | None = None,
              at_line: str = "{path}:{line}") -> str:
    """A text file's contents as UTF-8 (a BOM is dropped), or one ``error`` naming the file: unreadable,
    over ``max_bytes``, or not UTF-8 (with the line, as ``at_line`` formats it, and the byte)."""
    p = Path(path)
    try:
        if max_bytes is not None and (size := p.stat().st_size) > max_bytes:
            raise error(f"{p}: {size / 1e6:.1f} MB is too large for a {what} (limit {max_bytes / 1e6:.0f} MB)")
        raw = p.read_bytes()
    except OSError as e:
        raise error(f"{p}: cannot read the {what} ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        where = at_line.format(path=p, line=raw[: e.start].count(b"\n") + 1)
        raise error(f"{where}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the {what} as UTF-8") from None


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 text through :func:`atomic_open` (a JSON report, a log summary)."""
    with atomic_open(path, fsync=False) as f:
        f.write(text.encode("utf-8"))


def check_output_path(path: str | Path, option: str, kind: Literal["file", "dir"] = "file") -> Path:
    """Check, before the work starts, that ``path`` can be written as a ``kind``.

    Refuses a file where a folder is wanted and the other way round, a path that lies under
    an existing file, and a folder that cannot be written; the message names ``option`` (e.g.
    ``--save-dir``) and the path. An empty path (an unset shell variable) is refused too: it would
    mean the current folder. Creates nothing."""
    if not str(path).strip():
        raise PPSegError(f"{option}: the path is empty")
    p = Path(path)
    if kind == "dir" and p.exists() and not p.is_dir():
        raise PPSegError(f"{option} {p}: exists and is not a folder")
    if kind == "file" and p.is_dir():
        raise PPSegError(f"{option} {p}: is a folder; give a file name")
    ancestor = p if kind == "dir" else p.parent
    ancestor = ancestor.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise PPSegError(f"{option} {p}: lies under {ancestor}, which is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PPSegError(f"{option} {p}: {ancestor} is not writable")
    return p


def describe_os_error(e: OSError) -> str:
    """One line for an OS error: what happened and to which path (``no space left on device: PATH``)."""
    import errno

    paths = [str(f) for f in (e.filename, getattr(e, "filename2", None)) if f is not None]
    what = e.strerror or str(e) or type(e).__name__
    if e.errno == errno.ENOSPC:
        return f"no space left on device{': ' + paths[0] if paths else ''}"
    return f"{' -> '.join(paths)}: {what}" if paths else what
