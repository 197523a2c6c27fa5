"""Files: the one cache folder and the one atomic write of the kit.

Every file stipkit writes (checkpoints, caches, tables, provenance records, histories) goes
through :func:`atomic_write`: the bytes land in a temporary file beside the target
(``<name>.<random>.tmp``), are flushed to disk, and are renamed over the target, so a reader
never sees half a file. A process killed mid-write (``kill -9``) leaves only the temporary file;
:func:`remove_orphans` deletes such leftovers the next time the same target is written.
:func:`rewrite_csv` is that write for a results cache that several processes share (a lock).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

CACHE_ENV = "STIPKIT_CACHE"


def cache_dir(sub: str | None = None, path: str | os.PathLike | None = None) -> Path:
    """Where caches live: ``path`` if given, else ``$STIPKIT_CACHE``, else ``~/.cache/stipkit``;
    ``sub`` names a folder inside it (e.g. ``"lpips"``). Nothing is created here."""
    if path is None:
        path = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "stipkit"
    root = Path(path).expanduser()
    return root / sub if sub else root


def _tmp_prefix(path: Path) -> str:
    return path.name + "."


def remove_orphans(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that an interrupted :func:`atomic_write` of ``path`` left
    (``<name>.*.tmp`` beside it). Returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for p in path.parent.glob(_tmp_prefix(path) + "*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object] | bytes | str,
                 mode: int = 0o644) -> Path:
    """Write ``path`` atomically: ``write`` is the bytes or text to write, or a function that
    writes to the open binary file (e.g. ``lambda f: torch.save(obj, f)``). The folder is
    created; leftovers of an earlier interrupted write of the same path are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp creates 0600; caches and results are meant to be read
        with os.fdopen(fd, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["CACHE_ENV", "cache_dir", "atomic_write", "remove_orphans", "rewrite_csv"]


def rewrite_csv(path: str | os.PathLike, merged: Callable[[], object]):
    """Write ``merged()`` (a pandas DataFrame, computed while holding the lock) to the CSV at
    ``path`` with :func:`atomic_write`, under a lock file beside it (``<name>.lock``): several
    processes may share one results cache. Returns the DataFrame."""
    import fcntl
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        table = merged()
        atomic_write(path, table.to_csv(index=False, float_format="%.6g"))
        return table
