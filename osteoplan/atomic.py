"""Write files and folders atomically: to a temporary name in the same directory, then rename.

An interrupted write leaves nothing half-written under the final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool) -> None:
    """Give a temporary file/folder the permissions a normal one would have (mkstemp/mkdtemp make them
    private to the owner: 0600/0700 whatever the umask, so colleagues could not read the outputs)."""
    try:
        os.chmod(path, (0o777 if directory else 0o666) & ~_umask())
    except OSError:
        pass


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator:
    """Open a temporary file next to *path*; on success rename it to *path*, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
        _usual_mode(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write *data* to *path* atomically."""
    with atomic_file(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 *text* to *path* atomically."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        fh.write(text)


@contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to *path*; on success it is renamed to *path*.

    With ``overwrite=True`` an existing *path* is replaced (after the new one is complete);
    otherwise an existing non-empty *path* raises ``FileExistsError`` before anything is written.
    On error or interruption the temporary folder is removed.
    """
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        _usual_mode(tmp, directory=True)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
