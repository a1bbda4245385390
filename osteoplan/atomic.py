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
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, manifest: str | None = None,
               manifest_extra: dict | None = None) -> Iterator[Path]:
    """Yield a temporary folder next to *path*; on success it is renamed to *path*.

    With ``overwrite=True`` an existing *path* is replaced (after the new one is complete);
    otherwise an existing non-empty *path* raises ``FileExistsError`` before anything is written.
    With *manifest* (the command name), the folder gets :data:`MANIFEST_NAME` listing what was
    written, and an existing *path* is replaced only when it holds nothing else
    (:func:`check_output_folder`, ``InputError`` otherwise; checked again just before the swap).
    On error or interruption the temporary folder is removed.
    """
    path = Path(path)
    if manifest is not None:
        check_output_folder(path, overwrite, flag="output folder")
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent))
    try:
        yield tmp
        if manifest is not None:
            write_manifest(tmp, manifest, manifest_extra)
            check_output_folder(path, overwrite, flag="output folder")  # files may have been added meanwhile
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


# --------------------------------------------------------------------------- osteoplan's own output folders
#: Name of the manifest osteoplan writes in each output folder it creates.
MANIFEST_NAME = ".osteoplan-manifest.json"


def _entries(folder: Path) -> list[str]:
    """Every file and folder under *folder* (relative POSIX paths; folders end with "/"), sorted."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out.append(rel + "/" if p.is_dir() and not p.is_symlink() else rel)
    return out


def write_manifest(folder: str | os.PathLike, command: str, extra: dict | None = None) -> Path:
    """Write :data:`MANIFEST_NAME` into *folder*: what osteoplan wrote there.

    Format (JSON, UTF-8)::

        {"manifest": "osteoplan output folder", "version": 1, "command": "plan",
         "entries": ["images/", "images/axial.png", "plan.json", ...],   # files; folders end with "/"
         ...extra}                                                        # e.g. "ct_voxels_sha256"

    The manifest does not list itself. An output folder may later be replaced (``--overwrite``) only
    when every entry in it is listed (:func:`check_output_folder`).
    """
    import json

    folder = Path(folder)
    doc = {"manifest": "osteoplan output folder", "version": 1, "command": command,
           "entries": [e for e in _entries(folder) if e != MANIFEST_NAME]}
    doc.update(extra or {})
    path = folder / MANIFEST_NAME
    atomic_write_text(path, json.dumps(doc, indent=1))
    return path


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest of *folder*, or None when it has none or it cannot be read."""
    import json

    try:
        doc = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("entries"), list) else None


def foreign_entries(folder: str | os.PathLike) -> list[str]:
    """Entries of an existing *folder* that osteoplan's manifest does not list (all of them without one)."""
    folder = Path(folder)
    doc = read_manifest(folder)
    listed = set(doc["entries"]) if doc else set()
    listed.add(MANIFEST_NAME)
    return [e for e in _entries(folder) if e not in listed]


def check_output_folder(out: str | os.PathLike, overwrite: bool, flag: str = "--out",
                        overwrite_flag: str = "--overwrite") -> None:
    """Refuse, with one clear line, an output folder osteoplan must not write or replace.

    osteoplan writes an output folder whole (a temporary sibling renamed into place) and replaces an
    existing one only with *overwrite* and only when it holds nothing but what osteoplan wrote there
    (its :data:`MANIFEST_NAME` lists every entry): files of other work are never deleted.

    Raises
    ------
    InputError
        *out* is the current folder or one holding it; an existing file; a non-empty folder holding
        entries osteoplan did not write (whatever *overwrite*); an earlier osteoplan output without
        *overwrite*.
    """
    from osteoplan.errors import InputError, safe_path

    out = Path(out)
    cwd = Path.cwd().resolve()
    out_r = out.resolve()
    if out_r == cwd or out_r in cwd.parents:
        raise InputError(f"{flag}: it is the current folder (or holds it), which osteoplan does not write into; give "
                         "the name of a new sub-folder (e.g. osteoplan-out).")
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag}: {safe_path(out)} is a file, not a folder; give a new folder path.")
    if not out.is_dir() or not any(out.iterdir()):
        return
    foreign = foreign_entries(out)
    if foreign:
        # counted directly in *out*: a foreign sub-folder is one folder, whatever it holds (an osteoplan output
        # sub-folder holds a dozen files); entries added inside osteoplan's own sub-folders are counted apart
        fset = set(foreign)
        top = {e.split("/", 1)[0] + ("/" if "/" in e else "") for e in foreign}
        own = {e for e in top if e not in fset}  # osteoplan's sub-folder, something else added inside it
        n_dirs = sum(e.endswith("/") for e in top - own)
        n_files = len(top - own) - n_dirs
        n_inside = sum(1 for e in foreign if e.split("/", 1)[0] + "/" in own)
        parts = [" and ".join(f"{n} {word}{'s' if n > 1 else ''}" for n, word in ((n_files, "file"),
                                                                                  (n_dirs, "folder")) if n)]
        if n_inside:
            parts.append(f"{n_inside} entr{'ies' if n_inside > 1 else 'y'} inside osteoplan's own sub-folders")
        what = " and ".join(p for p in parts if p)
        raise InputError(f"{flag}: {safe_path(out, 'folder')} holds {what} that osteoplan did not write, "
                         "and osteoplan only replaces its own output folders; choose a new or empty folder.")
    if not overwrite:
        raise InputError(f"{flag}: folder exists and is not empty ({safe_path(out)}), an earlier osteoplan output; "
                         f"add {overwrite_flag} to replace it, or choose another folder.")


def add_to_manifest(folder: str | os.PathLike, entries_before: list[str]) -> None:
    """After a command wrote more files into an osteoplan output folder (``osteoplan report``): list the
    entries that were not there before (*entries_before*: :func:`list_entries` taken first). Entries that
    were there and unlisted stay unlisted (other work is never adopted). No manifest: nothing done."""
    import json

    folder = Path(folder)
    doc = read_manifest(folder)
    if doc is None:
        return
    before = set(entries_before)
    new = [e for e in _entries(folder) if e not in before and e != MANIFEST_NAME]
    doc["entries"] = sorted(set(doc["entries"]) | set(new))
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(doc, indent=1))


def list_entries(folder: str | os.PathLike) -> list[str]:
    """Every file and folder under *folder* (relative POSIX paths, folders ending with "/")."""
    return _entries(Path(folder))
