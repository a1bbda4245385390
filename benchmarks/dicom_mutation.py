"""Mutation corpus for the DICOM reader (issue 18, "DICOM input"): no silent wrong volume, no hang, no crash.

Mutants are built from a real series (default: the CThead neck crop, ``dicom-pitfalls/shuffled``: 53 slices
of 160 x 160, file names without extension) into a temporary folder whose name looks like a patient's
(``DOE^JANE_P123456_19610723``, so that a path leaking into a message is caught). Each mutant is one
*class* of damage (header values of rescale / position / orientation / size / pixel spacing / transfer
syntax, a corrupted VR, byte flips in the header, truncation, deeply nested sequences, odd files in the
folder, anonymiser damage) applied to one file that is then

* ``alone``:   the only file of the folder,
* ``replace``: put in place of its slice in the clean series,
* ``extra``:   added to the clean series as one more file,
* ``all``:     applied to every file of the series (anonymiser damage, transfer syntax),

and read in a forked child (hard time limit :data:`TIME_LIMIT_S`, address-space limit :data:`MEMORY_LIMIT_BYTES`)
by ``osteoplan info --json`` (the whole command, so that its report is checked too); the volume it reads
(``dicom_series.read_series``, the call :func:`osteoplan.imaging.read_volume` makes) is compared. Outcomes:

``same``        read; HU identical to the clean series (|dHU| <= :data:`HU_TOL`) and every voxel at the same
                place (corner voxels within :data:`GEOMETRY_TOL_MM`); no new warning.
``same_warned`` the same volume, with a warning saying what was tolerated (stray file skipped, copy dropped...).
``declared``    read; the one mutated slice differs by exactly what its (valid) mutated header declares
                (another plausible RescaleSlope/Intercept: a reader cannot know it is false).
``warned``      read without the first or last slice (the other slices identical, at the same places) and with a
                new warning saying a skipped file may be a missing end slice.
``error``       an :class:`~osteoplan.errors.OsteoplanError` with a one-line message (``info`` exits 1 or 2).
``DEFECT``      anything else: an uncaught exception, over the time or memory limit, a silent change of HU or
                geometry beyond tolerance, NaN/inf in the volume, a multi-line error, a path in any output
                (stdout, stderr, warnings, log records), an ``info`` report over :data:`MAX_REPORT_BYTES` or
                that is not valid JSON.

Run the whole corpus (about 2,300 mutants) and write the table::

    PYTHONPATH=. .venv/bin/python benchmarks/dicom_mutation.py --out docs/dicom_mutation.md

``tests/imaging/test_dicom_mutation.py`` runs a representative subset (every class, a few hundred mutants).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "cthead" / "dicom-pitfalls" / "shuffled"
if not DEFAULT_SOURCE.exists():
    DEFAULT_SOURCE = Path("/work/shared/data/cthead/dicom-pitfalls/shuffled")

#: Hard wall-clock limit of one mutant (both reads), seconds. A clean read of the neck crop takes ~0.3 s on
#: one core; 30 s leaves room for a loaded machine and still catches a hang or a runaway volume.
TIME_LIMIT_S = 30.0
#: Address space the child reading one mutant may add to what it maps when forked: 3 GiB (the clean read peaks far
#: below 1 GiB; the runaway volumes of issue 18 took 1.4 to 8 GB).
MEMORY_LIMIT_BYTES = 3 << 30


def _mapped_bytes() -> int:
    """Address space the current process maps (VmSize of /proc/self/status, bytes; 0 when unknown)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
#: HU tolerance for "identical" (float32 HU of integer stored values: exact in practice).
HU_TOL = 1e-3
#: Geometry tolerance: every corner voxel of the volume within this distance of the clean one (mm). The
#: reader tolerates in-plane position noise up to a tenth of a pixel (0.094 mm here) without resampling.
GEOMETRY_TOL_MM = 0.1
#: An ``info --json`` report larger than this is a defect (the clean one is ~3 kB; issue 18 saw 244 MB).
MAX_REPORT_BYTES = 1 << 20
#: Folder name of every mutant: looks like a patient's name, ID and birth date (never to appear in output).
PATIENT_FOLDER = "DOE^JANE_P123456_19610723"
LEAK_NEEDLES = ("DOE^JANE", "P123456", "19610723", "/tmp", "dicommut")


# ----------------------------------------------------------------------------------------------- raw editing
def _elements(data: bytes):
    """Top-level elements of an explicit-VR little-endian file: (tag, vr, header_offset, value_offset, length)."""
    import pydicom
    from pydicom.filebase import DicomBytesIO

    ds = pydicom.dcmread(DicomBytesIO(data), defer_size=16, force=True)
    out = {}
    for tag in list(ds._dict.keys()):
        e = ds._dict[tag]
        vt = getattr(e, "value_tell", None)
        if vt is None:
            continue
        vr = data[vt - 8:vt - 6].decode("latin-1") if data[vt - 8:vt - 6] in (
            b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV") else data[vt - 4:vt - 2].decode(
            "latin-1")
        hdr = vt - 12 if vr in ("OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV") else vt - 8
        out[int(tag)] = (vr, hdr, vt, e.length)
    return out


def set_value(data: bytes, tag: int, value: bytes | None, vr: str | None = None) -> bytes:
    """*data* with the top-level element *tag* given raw *value* (None: removed; element added if absent)."""
    els = _elements(data)
    value = None if value is None else (value + b" " if len(value) % 2 else value)
    if tag in els:
        evr, hdr, vt, length = els[tag]
        end = vt + (length if length != 0xFFFFFFFF else 0)
        if value is None:
            return data[:hdr] + data[end:]
        vr = vr or evr
        return data[:hdr] + _encode(tag, vr, value) + data[end:]
    if value is None:
        return data
    # insert before the first larger tag
    after = sorted(t for t in els if t > tag and t >> 16 != 2)
    pos = els[after[0]][1] if after else len(data)
    from pydicom.datadict import dictionary_VR

    return data[:pos] + _encode(tag, vr or dictionary_VR(tag), value) + data[pos:]


def _encode(tag: int, vr: str, value: bytes) -> bytes:
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("latin-1")[:2].ljust(2, b" ")
    if vr in ("OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV"):
        return head + b"\0\0" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value) & 0xFFFF) + value


def set_vr(data: bytes, tag: int, new_vr: bytes) -> bytes:
    """*data* with only the 2 VR bytes of *tag* replaced (the length field is left as it is)."""
    els = _elements(data)
    if tag not in els:
        return data
    _, hdr, _, _ = els[tag]
    return data[:hdr + 4] + new_vr + data[hdr + 6:]


def header_span(data: bytes) -> tuple[int, int]:
    """(start, end) byte range of the dataset header: after the preamble, before the pixel data value."""
    els = _elements(data)
    end = els.get(0x7FE00010, (None, len(data), len(data), 0))[2]
    return 132, max(133, end - 12)


def set_meta_ts(data: bytes, ts: str) -> bytes:
    """*data* with the file meta TransferSyntaxUID replaced (pixel data NOT re-encoded); group length fixed."""
    ts_b = ts.encode("ascii")
    if len(ts_b) % 2:
        ts_b += b"\0"
    i = data.find(b"\x02\x00\x10\x00UI")
    if i < 0:
        return data
    n = struct.unpack("<H", data[i + 6:i + 8])[0]
    new = data[:i] + b"\x02\x00\x10\x00UI" + struct.pack("<H", len(ts_b)) + ts_b + data[i + 8 + n:]
    g = new.find(b"\x02\x00\x00\x00UL\x04\x00")
    if g >= 0:
        old_len = struct.unpack("<I", new[g + 8:g + 12])[0]
        new = new[:g + 8] + struct.pack("<I", old_len + len(ts_b) - n) + new[g + 12:]
    return new


def nested_sequence(depth: int, defined_length: bool = False) -> bytes:
    """A private SQ element (0029,xx10) nested *depth* levels deep (undefined or defined lengths)."""
    creator = _encode(0x00290010, "LO", b"MUTATION")
    inner = _encode(0x00291010, "LO", b"LEAF")
    for _ in range(depth):
        if defined_length:
            item = b"\xfe\xff\x00\xe0" + struct.pack("<I", len(inner)) + inner
            inner = struct.pack("<HH", 0x0029, 0x1010) + b"SQ\0\0" + struct.pack("<I", len(item)) + item
        else:
            item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + inner + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
            inner = (struct.pack("<HH", 0x0029, 0x1010) + b"SQ\0\0\xff\xff\xff\xff" + item
                     + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    return creator + inner


def insert_raw(data: bytes, before_tag: int, raw: bytes) -> bytes:
    els = _elements(data)
    after = sorted(t for t in els if t >= before_tag)
    pos = els[after[0]][1] if after else len(data)
    return data[:pos] + raw + data[pos:]


# ----------------------------------------------------------------------------------------------- corpus
@dataclass
class Mutant:
    """One mutant: how to build its folder from the clean files."""

    mclass: str
    name: str
    placement: str  # alone | replace | extra | all | folder
    slice_index: int  # index into the clean files sorted by position (which slice is mutated)
    mutate: Callable[[bytes], bytes] | None = None
    folder_hook: Callable[[Path, "Source"], None] | None = None
    extra_name: str = "IM99999"
    notes: dict = field(default_factory=dict)


@dataclass
class Source:
    files: list[Path]  # sorted by position along the normal (index = slice k of the clean volume)
    data: list[bytes]


def load_source(folder: Path) -> Source:
    import pydicom

    files = sorted(p for p in folder.iterdir() if p.is_file())
    z = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        z.append(float(ds.ImagePositionPatient[2]))
    order = np.argsort(z)
    files = [files[i] for i in order]
    return Source(files, [f.read_bytes() for f in files])


T = {  # tags
    "slope": 0x00281053, "intercept": 0x00281052, "ipp": 0x00200032, "iop": 0x00200037, "ps": 0x00280030,
    "rows": 0x00280010, "cols": 0x00280011, "bits": 0x00280100, "stored": 0x00280101, "pixrep": 0x00280103,
    "spp": 0x00280002, "nframes": 0x00280008, "series": 0x0020000E, "sop_class": 0x00080016, "modality": 0x00080060,
    "name": 0x00100010, "pid": 0x00100020, "for": 0x00200052, "study": 0x0020000D, "inst": 0x00200013,
    "pixel": 0x7FE00010, "itype": 0x00080008, "thick": 0x00180050, "desc": 0x0008103E,
}


def _ipp(data: bytes) -> list[float]:
    els = _elements(data)
    _, _, vt, n = els[T["ipp"]]
    return [float(x) for x in data[vt:vt + n].decode().strip(" \0").split("\\")]


def _ds(vals) -> bytes:
    return "\\".join(v if isinstance(v, str) else f"{v:.10g}" for v in vals).encode()


def build_corpus(src: Source, seed: int = 18) -> list[Mutant]:
    """Every mutant of the corpus, deterministic for a seed (about 2,300)."""
    rng = random.Random(seed)
    S = len(src.files)
    picks = [0, 1, S // 2, S - 2, S - 1]  # first, second, middle, second to last, last slice
    muts: list[Mutant] = []

    def add(mclass, name, fn, placements=("replace", "extra", "alone"), slices=None):
        for pl in placements:
            for k in (slices if slices is not None else picks):
                muts.append(Mutant(mclass, name, pl, k, mutate=fn))

    # rescale: invalid values (must be refused or the copy dropped) and valid other values (declared)
    for kw in ("slope", "intercept"):
        for v in (None, b"", b"abc", b"nan", b"inf", b"-inf", b"0", b"-1", b"1e-6", b"1e6", b"1e308", b"-1e5",
                  b"1\\2", b"\x00\x01\xfe\xff", b"1.5e", b"2" if kw == "slope" else b"-1000",
                  b"0.5" if kw == "slope" else b"-1030", b"200" if kw == "slope" else b"8000"):
            add("rescale", f"{kw}={v!r}", (lambda d, t=T[kw], v=v: set_value(d, t, v)))
    # position
    for name, fn in {
        "z=nan": lambda p: [p[0], p[1], "nan"], "x=inf": lambda p: ["inf", p[1], p[2]],
        "z=1e308": lambda p: [p[0], p[1], 1e308], "z=-7210000": lambda p: [p[0], p[1], -7210000.0],
        "z=+1e5": lambda p: [p[0], p[1], p[2] + 1e5], "x+0.02mm": lambda p: [p[0] + 0.02, p[1], p[2]],
        "y-0.05mm": lambda p: [p[0], p[1] - 0.05, p[2]], "x+5mm": lambda p: [p[0] + 5, p[1], p[2]],
        "z+half step": lambda p: [p[0], p[1], p[2] + 1.0], "z+0.004mm": lambda p: [p[0], p[1], p[2] + 0.004],
        "z=neighbour": lambda p: [p[0], p[1], p[2] + 2.0], "two values": lambda p: [p[0], p[1]],
        "abc": lambda p: ["abc", p[1], p[2]], "empty": None, "missing": "missing",
    }.items():
        if fn is None:
            f = (lambda d: set_value(d, T["ipp"], b""))
        elif fn == "missing":
            f = (lambda d: set_value(d, T["ipp"], None))
        else:
            f = (lambda d, fn=fn: set_value(d, T["ipp"], _ds(fn(_ipp(d)))))
        add("position", name, f)
    # orientation
    for name, v in {
        "nan": b"nan\\0\\0\\0\\1\\0", "zeros": b"0\\0\\0\\0\\0\\0", "not perpendicular": b"1\\0\\0\\0.7071\\0.7071\\0",
        "noise 1e-6": b"1\\0.000001\\0\\0\\1\\0", "rotated 90": b"0\\1\\0\\-1\\0\\0", "sagittal": b"0\\1\\0\\0\\0\\-1",
        "five values": b"1\\0\\0\\0\\1", "inf": b"inf\\0\\0\\0\\1\\0", "garbage": b"\x01\x02\x03\x04", "missing": None,
        "1e308": b"1e308\\0\\0\\0\\1\\0",
    }.items():
        add("orientation", name, (lambda d, v=v: set_value(d, T["iop"], v)))
    # size / pixel description
    for name, tag, v, vr in [
        ("rows+1", "rows", struct.pack("<H", 161), "US"), ("rows=0", "rows", struct.pack("<H", 0), "US"),
        ("cols=65535", "cols", struct.pack("<H", 65535), "US"), ("cols-1", "cols", struct.pack("<H", 159), "US"),
        ("bits=8", "bits", struct.pack("<H", 8), "US"), ("bits=32", "bits", struct.pack("<H", 32), "US"),
        ("bits=12", "bits", struct.pack("<H", 12), "US"), ("bits=0", "bits", struct.pack("<H", 0), "US"),
        ("stored=40", "stored", struct.pack("<H", 40), "US"), ("pixrep=flip", "pixrep", struct.pack("<H", 0), "US"),
        ("samples=3", "spp", struct.pack("<H", 3), "US"), ("frames=2^31-1", "nframes", b"2147483647", "IS"),
        ("frames=0", "nframes", b"0", "IS"), ("frames=2", "nframes", b"2", "IS"), ("frames=-1", "nframes", b"-1", "IS"),
        ("rows missing", "rows", None, "US"), ("spacing=0", "ps", b"0\\0", "DS"), ("spacing=nan", "ps", b"nan\\nan", "DS"),
        ("spacing=-0.9", "ps", b"-0.9375\\-0.9375", "DS"), ("spacing=1e6", "ps", b"1e6\\1e6", "DS"),
        ("spacing=abc", "ps", b"abc", "DS"), ("spacing other", "ps", b"0.5\\0.5", "DS"),
        ("spacing missing", "ps", None, "DS"), ("pixel data missing", "pixel", None, "OW"),
        ("pixel data short", "pixel", b"\x00" * 1000, "OW"),
    ]:
        add("size", name, (lambda d, t=T[tag], v=v, vr=vr: set_value(d, t, v, vr)))
    # transfer syntax in the file meta (pixel data not re-encoded)
    for ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.90",
               "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.3.4", "",
               "1.2.840.10008.1.2.4.201"):
        add("transfer syntax", f"ts={ts or 'empty'}", (lambda d, ts=ts: set_meta_ts(d, ts)),
            placements=("replace", "extra", "alone", "all"), slices=[0, S // 2, S - 1])
    # corrupted VR (only the two VR bytes change; the length field is then read with the wrong width)
    for tagname in ("name", "pid", "intercept", "ipp", "rows", "series", "sop_class", "itype", "study", "desc"):
        for vr in (b"UN", b"SQ", b"OB", b"FD", b"US", b"XX", b"\x00\x00", b"PN", b"UT"):
            add("corrupted VR", f"{tagname} VR={vr!r}", (lambda d, t=T[tagname], vr=vr: set_vr(d, t, vr)),
                placements=("replace", "extra"), slices=[0, S // 2])
    # byte flips in the header (pixel data excluded: a flipped pixel is undetectable without a checksum)
    for n in range(360):
        r = random.Random(rng.random())
        nflips = r.choice((1, 1, 1, 2, 4))
        k = r.choice(picks)

        def flip(d, r=random.Random(r.random()), nflips=nflips):
            a, b = header_span(d)
            arr = bytearray(d)
            for _ in range(nflips):
                pos = r.randrange(a, b)
                arr[pos] ^= r.choice((0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF))
            return bytes(arr)

        muts.append(Mutant("byte flip", f"flip#{n}x{nflips}", r.choice(("replace", "replace", "extra")), k,
                           mutate=flip))
    # truncation
    for frac in (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99):
        add("truncation", f"keep {frac:.0%}", (lambda d, frac=frac: d[:int(len(d) * frac)]))
    # nested sequences
    for depth in (1, 10, 100, 150, 500, 1000, 3000):
        for defined in (False, True):
            add("nested sequence", f"depth {depth}{' defined length' if defined else ''}",
                (lambda d, depth=depth, defined=defined: insert_raw(d, 0x00300000, nested_sequence(depth, defined))),
                placements=("replace", "extra", "alone"), slices=[0, S // 2])
    # anonymiser damage (on every file of the series)
    add("anonymised", "SeriesInstanceUID empty", lambda d: set_value(d, T["series"], b""), placements=("all",), slices=[0])
    add("anonymised", "SeriesInstanceUID missing", lambda d: set_value(d, T["series"], None), placements=("all",),
        slices=[0])
    add("anonymised", "SOPClassUID only in file meta", lambda d: set_value(d, T["sop_class"], None), placements=("all",),
        slices=[0])
    add("anonymised", "UIDs blank + SOP class in meta only",
        lambda d: set_value(set_value(d, T["series"], b""), T["sop_class"], None), placements=("all",), slices=[0])
    add("anonymised", "SeriesInstanceUID, StudyInstanceUID, FrameOfReferenceUID empty",
        lambda d: set_value(set_value(set_value(d, T["series"], b""), T["study"], b""), T["for"], b""),
        placements=("all",), slices=[0])
    add("anonymised", "SeriesInstanceUID empty in one file", lambda d: set_value(d, T["series"], b""),
        placements=("replace",))
    # odd files and folders next to the clean series
    for name, hook in ODD_FILES.items():
        muts.append(Mutant("odd file", name, "folder", 0, folder_hook=hook))
    return muts


def _odd_fifo(folder: Path, src: Source) -> None:
    os.mkfifo(folder / "pipe")


def _odd_deep(depth: int):
    def hook(folder: Path, src: Source) -> None:
        d = folder
        for _ in range(depth):  # one level at a time (os.makedirs recurses)
            d = d / "d"
            d.mkdir()
        (d / "IMDEEP").write_bytes(src.data[len(src.data) // 2])
    return hook


def _odd_symlink_loop(folder: Path, src: Source) -> None:
    (folder / "loop").mkdir()
    os.symlink("..", folder / "loop" / "up")


def _odd_broken_symlink(folder: Path, src: Source) -> None:
    os.symlink("/nonexistent/DOE^JANE", folder / "dangling")


def _odd_sparse_huge(folder: Path, src: Source) -> None:
    with open(folder / "huge", "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        fh.seek(5 << 30)
        fh.write(b"\0")


def _odd_empty(folder: Path, src: Source) -> None:
    (folder / "empty").write_bytes(b"")


def _odd_dicm_only(folder: Path, src: Source) -> None:
    (folder / "header").write_bytes(b"\0" * 128 + b"DICM")


def _odd_text(folder: Path, src: Source) -> None:
    (folder / "README").write_text("exported by a workstation\n")


def _odd_patient_named_file(folder: Path, src: Source) -> None:
    (folder / "DOE^JANE_19610723.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x00junk")


def _odd_unreadable(folder: Path, src: Source) -> None:
    p = folder / "locked"
    p.write_bytes(src.data[0])
    p.chmod(0)


def _odd_patient_named_subfolder(folder: Path, src: Source) -> None:
    sub = folder / "SMITH^JOHN_19500101"
    sub.mkdir()
    (sub / "x").write_bytes(set_value(src.data[3], T["slope"], b"abc"))


def _odd_socket(folder: Path, src: Source) -> None:
    import socket

    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(folder / "sock"))
    except OSError:
        pass
    finally:
        s.close()


ODD_FILES: dict[str, Callable[[Path, Source], None]] = {
    "named pipe (FIFO)": _odd_fifo, "unix socket": _odd_socket, "1,100 nested folders": _odd_deep(1100),
    "60 nested folders": _odd_deep(60), "symlink loop": _odd_symlink_loop, "dangling symlink": _odd_broken_symlink,
    "5 GiB sparse file": _odd_sparse_huge, "empty file": _odd_empty, "preamble + DICM only": _odd_dicm_only,
    "text file": _odd_text, "file named after the patient": _odd_patient_named_file,
    "file without read permission": _odd_unreadable, "sub-folder named after the patient": _odd_patient_named_subfolder,
}


def build_folder(m: Mutant, src: Source, root: Path) -> Path:
    """Write the mutant's folder under *root* (unchanged slices are symlinks to the source files)."""
    folder = root / PATIENT_FOLDER
    folder.mkdir(parents=True)

    def link(k):
        os.symlink(src.files[k], folder / f"IM{k:05d}")

    if m.placement == "folder":
        for k in range(len(src.files)):
            link(k)
        m.folder_hook(folder, src)
        return folder
    if m.placement == "all":
        for k in range(len(src.files)):
            (folder / f"IM{k:05d}").write_bytes(m.mutate(src.data[k]))
        return folder
    mutated = m.mutate(src.data[m.slice_index])
    if m.placement == "alone":
        (folder / "IM00000").write_bytes(mutated)
        return folder
    for k in range(len(src.files)):
        if m.placement == "replace" and k == m.slice_index:
            (folder / f"IM{k:05d}").write_bytes(mutated)
        else:
            link(k)
    if m.placement == "extra":
        (folder / m.extra_name).write_bytes(mutated)
    return folder


# ----------------------------------------------------------------------------------------------- running
def _child(folder: Path, conn) -> None:
    """Read one mutant folder (both ``info --json`` and ``read_volume``); send the observations."""
    import logging
    import resource
    import warnings

    # the budget is for the read: on top of what the (forked) process already maps -- a test runner that has imported
    # dask, numba and SimpleITK maps more than 3 GiB before reading anything
    limit = _mapped_bytes() + MEMORY_LIMIT_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    obs: dict = {}
    log_buf = io.StringIO()
    handler = logging.StreamHandler(log_buf)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)
    for name in ("pydicom",):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        from osteoplan.cli import main
        from osteoplan.imaging import dicom_series

        # the volume `info` reads (dicom_series.read_series, the same call read_volume makes) is kept
        volumes = []
        original = dicom_series.read_series

        def keep(*a, **kw):
            v = original(*a, **kw)
            volumes.append(v)
            return v

        dicom_series.read_series = keep
        # the command, with fd-level capture (LAPACK/C libraries print on the real stdout)
        with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
            sys.stdout.flush()
            sys.stderr.flush()
            so, se = os.dup(1), os.dup(2)
            os.dup2(out_f.fileno(), 1)
            os.dup2(err_f.fileno(), 2)
            saved = sys.stdout, sys.stderr  # e.g. pytest's capture objects, which do not write to fd 1/2
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
            for h in logging.getLogger().handlers:
                if isinstance(h, logging.StreamHandler) and h is not handler:
                    h.setStream(sys.stderr)
            try:
                with warnings.catch_warnings(record=True) as wlist:
                    warnings.simplefilter("always")
                    code = main(["info", "--json", str(folder)])
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                sys.stdout, sys.stderr = saved
                os.dup2(so, 1)
                os.dup2(se, 2)
                os.close(so)
                os.close(se)
            out_f.seek(0, 2)
            obs["info_bytes"] = out_f.tell()
            out_f.seek(0)
            out = out_f.read(MAX_REPORT_BYTES + 1).decode("utf-8", "replace")
            err_f.seek(0)
            err = err_f.read(1 << 16).decode("utf-8", "replace")
        obs["info_code"] = code
        obs["info_err"] = err
        obs["info_warnings"] = [str(w.message) for w in wlist]
        info = None
        try:
            info = json.loads(out) if obs["info_bytes"] <= MAX_REPORT_BYTES else None
            obs["info_json_ok"] = isinstance(info, dict)
        except ValueError:
            obs["info_json_ok"] = False
        obs["info_out_leak"] = [n for n in LEAK_NEEDLES if n in out]
        chosen = (info or {}).get("chosen") or {}
        err_lines = [ln[len("error: "):] for ln in err.splitlines() if ln.startswith("error: ")]
        if "unexpected" in err:
            obs["read"] = "uncaught"
            obs["error_type"] = "unexpected"
            obs["error"] = err.strip()[:300]
        elif chosen.get("volume") and volumes:
            v = volumes[-1]
            obs.update(read="ok", array=v.array, affine=v.affine, warnings=list(v.warnings))
        elif chosen.get("error"):
            obs.update(read="error", error_type="info", error=chosen["error"])
        elif code == 2 and err_lines:
            obs.update(read="error", error_type="info", error=err_lines[0])
        else:
            obs.update(read="uncaught", error_type="no outcome", error=f"exit {code}, {err.strip()[:200]}")
        obs["read_warnings"] = []
    except BaseException as exc:  # noqa: BLE001
        obs["read"] = "uncaught"
        obs["error_type"] = type(exc).__name__
        obs["error"] = f"harness: {str(exc)[:300]}"
    obs["log"] = log_buf.getvalue()[-20000:]
    try:
        conn.send(obs)
    except Exception as exc:  # noqa: BLE001 - e.g. MemoryError while pickling
        conn.send({"read": "uncaught", "error_type": type(exc).__name__, "error": "harness: could not send"})
    conn.close()


@dataclass
class Reference:
    array: np.ndarray
    affine: np.ndarray
    warnings: list[str]
    stored: list[np.ndarray]  # stored values of each clean slice (for the "declared" expectation)
    slope_intercept: list[tuple[float, float]]


def reference(src: Source, root: Path) -> Reference:
    import pydicom

    from osteoplan.imaging import read_volume

    folder = root / "clean"
    folder.mkdir()
    for k, f in enumerate(src.files):
        os.symlink(f, folder / f"IM{k:05d}")
    v = read_volume(folder)
    stored, si = [], []
    for f in src.files:
        ds = pydicom.dcmread(f)
        stored.append(ds.pixel_array.astype(np.float64))
        si.append((float(ds.RescaleSlope), float(ds.RescaleIntercept)))
    return Reference(v.array, v.affine, list(v.warnings), stored, si)


def _corners(shape, affine) -> np.ndarray:
    K, J, I = shape
    c = np.array([[k, j, i, 1.0] for k in (0, K - 1) for j in (0, J - 1) for i in (0, I - 1)])
    return (affine @ c.T).T[:, :3]


def declared_slice(m: Mutant, ref: Reference, src: Source) -> np.ndarray | None:
    """HU the mutated slice must hold when its mutated header is valid (independent of the reader), else None.

    Only for a single mutated slice (``replace``) whose position, orientation, spacing and size are
    unchanged: HU = stored (clean pixels) * slope' + intercept' with the mutated values as pydicom reads them.
    """
    import pydicom
    from pydicom.filebase import DicomBytesIO

    if m.placement != "replace" or m.mutate is None:
        return None
    try:
        d0 = src.data[m.slice_index]
        ds0 = pydicom.dcmread(DicomBytesIO(d0), stop_before_pixels=True)
        ds = pydicom.dcmread(DicomBytesIO(m.mutate(d0)), stop_before_pixels=True)
        for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
                   "BitsAllocated", "PixelRepresentation"):
            if str(ds.get(kw)) != str(ds0.get(kw)):
                return None
        slope, inter = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    except Exception:  # noqa: BLE001 - no valid declaration
        return None
    if not (np.isfinite(slope) and np.isfinite(inter) and slope > 0):
        return None
    return (ref.stored[m.slice_index] * slope + inter).astype(np.float32)


def classify(m: Mutant, obs: dict, ref: Reference, src: Source) -> tuple[str, str]:
    """(outcome, detail) of one mutant."""
    if obs.get("timeout"):
        return "DEFECT", f"over the {TIME_LIMIT_S:g} s limit"
    if obs.get("crashed"):
        return "DEFECT", f"child died ({obs['crashed']})"
    leaks = list(obs.get("info_out_leak") or [])
    for key in ("info_err", "log", "error"):
        leaks += [n for n in LEAK_NEEDLES if n in str(obs.get(key) or "")]
    for key in ("info_warnings", "read_warnings", "warnings"):
        for w in obs.get(key) or []:
            leaks += [n for n in LEAK_NEEDLES if n in w]
    if leaks:
        return "DEFECT", f"path/identifier in output ({sorted(set(leaks))})"
    if "unexpected" in (obs.get("info_err") or "") or obs.get("info_code") not in (0, 1, 2):
        return "DEFECT", f"info: {(obs.get('info_err') or '').strip()[:160]} (exit {obs.get('info_code')})"
    err_lines = [ln for ln in (obs.get("info_err") or "").splitlines() if ln.startswith("error:")]
    if len(err_lines) > 1:
        return "DEFECT", "info: more than one error line on stderr"
    if obs.get("info_code") == 2 and obs.get("info_bytes") == 0 and len(err_lines) == 1:
        pass  # the command refused the input with one line: no report is expected
    elif not obs.get("info_json_ok"):
        return "DEFECT", f"info --json report not valid JSON or over the size limit ({obs.get('info_bytes')} bytes)"
    if obs.get("read") == "uncaught":
        return "DEFECT", f"uncaught {obs.get('error_type')}: {obs.get('error', '')[:160]}"
    if obs.get("read") == "error":
        if "\n" in obs["error"]:
            return "DEFECT", "multi-line error"
        return "error", _gist(obs["error"])
    arr, aff = obs["array"], obs["affine"]
    if not np.isfinite(arr).all():
        return "DEFECT", "NaN/inf in the volume"
    new_warn = [w for w in obs["warnings"] if w not in ref.warnings]
    same_geom = arr.shape == ref.array.shape and np.max(
        np.linalg.norm(_corners(arr.shape, aff) - _corners(ref.array.shape, ref.affine), axis=1)) <= GEOMETRY_TOL_MM
    if same_geom:
        diff = np.abs(arr - ref.array)
        if float(diff.max()) <= HU_TOL:
            return ("same_warned", _gist(new_warn[0])) if new_warn else ("same", "")
        changed = np.nonzero(diff.reshape(diff.shape[0], -1).max(axis=1) > HU_TOL)[0]
        exp = declared_slice(m, ref, src)
        if exp is not None and list(changed) == [m.slice_index] and float(np.abs(arr[m.slice_index] - exp).max()) <= HU_TOL:
            return "declared", "slice HU as its valid mutated rescale states"
        what = "with an unrelated warning" if new_warn else "silent"
        return "DEFECT", f"HU change ({what}) in slice(s) {list(changed)[:5]} (max {float(diff.max()):.4g} HU)"
    if new_warn and _is_end_slice_dropped(arr, aff, ref):
        return "warned", _gist(new_warn[0])
    if new_warn:
        return "DEFECT", f"geometry changed beyond a dropped end slice (shape {arr.shape}), with warning: " \
                         f"{_gist(new_warn[0])}"
    return "DEFECT", f"silent geometry change (shape {arr.shape} vs {ref.array.shape})"


def _is_end_slice_dropped(arr: np.ndarray, aff: np.ndarray, ref: Reference) -> bool:
    """True when the volume is the clean one without its first or last slice (same HU, same voxel places)."""
    K = ref.array.shape[0]
    if arr.shape != (K - 1,) + ref.array.shape[1:]:
        return False
    for lo in (0, 1):
        sub_aff = ref.affine.copy()
        sub_aff[:3, 3] = ref.affine[:3, 3] + lo * ref.affine[:3, 0]
        if (np.max(np.abs(arr - ref.array[lo:lo + K - 1])) <= HU_TOL and np.max(np.linalg.norm(
                _corners(arr.shape, aff) - _corners(arr.shape, sub_aff), axis=1)) <= GEOMETRY_TOL_MM):
            return True
    return False


def _gist(msg: str) -> str:
    """First words of a message, numbers removed, to group outcomes."""
    import re

    g = re.sub(r"\(.*", "", msg)
    g = re.sub(r"[-+]?\d[\d.e+-]*", "#", g)
    return " ".join(g.split()[:9])


def run_corpus(muts: list[Mutant], src: Source, workers: int = 2, progress: bool = True,
               keep_failures: Path | None = None) -> list[dict]:
    """Build, read (forked children, time and memory limited) and classify every mutant."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    tmp = Path(tempfile.mkdtemp(prefix="dicommut-"))
    results: list[dict] = []
    try:
        ref = reference(src, tmp)
        # warm the imports once in the parent so that forked children start fast
        import osteoplan.faces.cli.imaging  # noqa: F401
        from osteoplan.cli import build_parser

        build_parser()  # imports every stage's command module once, before forking
        import osteoplan.imaging.dicom_series  # noqa: F401
        from pydicom.pixels import pixel_array  # noqa: F401

        pending = list(enumerate(muts))
        running: dict[int, tuple] = {}
        t_start = time.monotonic()
        while pending or running:
            while pending and len(running) < workers:
                i, m = pending.pop(0)
                root = tmp / f"m{i}"
                root.mkdir()
                try:
                    folder = build_folder(m, src, root)
                except Exception as exc:  # noqa: BLE001 - a generator problem, not a reader one
                    results.append(dict(index=i, mclass=m.mclass, name=m.name, placement=m.placement,
                                        outcome="skipped", detail=f"generator: {type(exc).__name__}: {exc}",
                                        seconds=0.0))
                    shutil.rmtree(root, ignore_errors=True)
                    continue
                parent_conn, child_conn = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_child, args=(folder, child_conn))
                p.start()
                child_conn.close()
                running[i] = (p, parent_conn, time.monotonic(), m, root)
            done = []
            from multiprocessing.connection import wait as mp_wait

            mp_wait([r[1] for r in running.values()] + [r[0].sentinel for r in running.values()], timeout=0.2)
            for i, (p, conn, t0, m, root) in running.items():
                obs = None
                if conn.poll(0):
                    try:
                        obs = conn.recv()
                    except (EOFError, OSError):
                        obs = {"crashed": f"exit code {p.exitcode}"}
                elif not p.is_alive() and not conn.poll(0):
                    obs = {"crashed": f"exit code {p.exitcode}"}
                elif time.monotonic() - t0 > TIME_LIMIT_S:
                    p.kill()
                    obs = {"timeout": True}
                if obs is None:
                    continue
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
                dt = time.monotonic() - t0
                outcome, detail = classify(m, obs, ref, src)
                results.append(dict(index=i, mclass=m.mclass, name=m.name, placement=m.placement,
                                    slice=m.slice_index, outcome=outcome, detail=detail, seconds=round(dt, 3)))
                if outcome == "DEFECT" and keep_failures is not None:
                    keep_failures.mkdir(parents=True, exist_ok=True)
                    dst = keep_failures / f"m{i}"
                    if not dst.exists():
                        shutil.copytree(root, dst, symlinks=True, ignore_dangling_symlinks=True,
                                        ignore=shutil.ignore_patterns("pipe", "sock", "huge"))
                _rmtree(root)
                done.append(i)
                if progress:
                    n = len(results)
                    if n % 100 == 0 or outcome == "DEFECT":
                        print(f"[{n}/{len(muts)} {time.monotonic() - t_start:.0f}s] {m.mclass} / {m.name} / "
                              f"{m.placement} k={m.slice_index}: {outcome} {detail}", file=sys.stderr, flush=True)
            for i in done:
                del running[i]
    finally:
        _rmtree(tmp)
    return sorted(results, key=lambda r: r["index"])


def _rmtree(path: Path) -> None:
    """Remove a mutant folder, including 1,100-level nests and files without permission."""
    def onerror(func, p, exc):
        try:
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    if not path.exists():
        return
    # deep nests (shutil.rmtree recurses): remove the chains of single folders bottom-up first
    stack = [path]
    while stack:
        cur = stack.pop()
        try:
            subs = [e for e in os.scandir(cur) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        for e in subs:
            chain = [Path(e.path)]
            while True:
                try:
                    nxt = [x for x in os.scandir(chain[-1]) if x.is_dir(follow_symlinks=False)]
                except OSError:
                    break
                if len(nxt) != 1 or len(chain) > 10_000:
                    stack.extend(Path(x.path) for x in nxt)
                    break
                chain.append(Path(nxt[0].path))
            if len(chain) > 50:
                for c in reversed(chain):
                    for x in os.scandir(c):
                        if not x.is_dir(follow_symlinks=False):
                            os.unlink(x.path)
                    try:
                        os.rmdir(c)
                    except OSError:
                        break
    shutil.rmtree(path, onerror=onerror)


OUTCOMES = ("same", "same_warned", "declared", "warned", "error", "DEFECT", "skipped")


def table(results: list[dict]) -> str:
    """Markdown: counts per class and outcome, then the detail of the outcomes per class."""
    by = defaultdict(Counter)
    for r in results:
        by[r["mclass"]][r["outcome"]] += 1
    lines = ["| class | mutants | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 2) + "|"]
    tot = Counter()
    for c in sorted(by):
        tot.update(by[c])
        lines.append(f"| {c} | {sum(by[c].values())} | " + " | ".join(str(by[c][o]) for o in OUTCOMES) + " |")
    lines.append(f"| **all** | **{sum(tot.values())}** | " + " | ".join(f"**{tot[o]}**" for o in OUTCOMES) + " |")
    return "\n".join(lines)


def placement_table(results: list[dict]) -> str:
    by = defaultdict(Counter)
    for r in results:
        by[r["placement"]][r["outcome"]] += 1
    lines = ["| placement | mutants | " + " | ".join(OUTCOMES) + " |", "|---" * (len(OUTCOMES) + 2) + "|"]
    for c in ("replace", "extra", "alone", "all", "folder"):
        if by[c]:
            lines.append(f"| {c} | {sum(by[c].values())} | " + " | ".join(str(by[c][o]) for o in OUTCOMES) + " |")
    return "\n".join(lines)


def details(results: list[dict], top: int = 6) -> str:
    by = defaultdict(Counter)
    for r in results:
        if r["outcome"] not in ("same",):
            by[r["mclass"]][(r["outcome"], r["detail"])] += 1
    out = []
    for c in sorted(by):
        out.append(f"\n**{c}**\n")
        for (o, d), n in by[c].most_common(top):
            out.append(f"- {o} × {n}: {d}")
    warned = Counter((r["mclass"], r["placement"], r["slice"], r["detail"]) for r in results if r["outcome"] == "warned")
    if warned:
        out.append("\n## Every `warned` outcome (volume changed, with a warning)\n")
        out.append("| class | placement | slice k | first new warning | mutants |")
        out.append("|---|---|---|---|---|")
        for (c, pl, k, d), n in sorted(warned.items()):
            out.append(f"| {c} | {pl} | {k} | {d} | {n} |")
        ends = sum(n for (c, pl, k, d), n in warned.items() if k in (0, max(r["slice"] for r in results)))
        out.append(f"\n{ends} of {sum(warned.values())} are an end slice whose file could not be used (or whose "
                   "SeriesInstanceUID was damaged): the volume is one slice shorter, the slices it has are unchanged, "
                   "and the warnings say that a skipped file (or a look-alike series) may be a missing end slice.")
    return "\n".join(out)


def representative_subset(muts: list[Mutant], size: int = 250) -> list[Mutant]:
    """About *size* mutants, every class represented in proportion (odd files, anonymised series and nested
    sequences, the classes of issue 18's hangs and crashes, kept whole), evenly spaced within each class."""
    keep_all = {"odd file", "anonymised", "nested sequence"}
    by: dict[str, list[Mutant]] = defaultdict(list)
    for m in muts:
        by[m.mclass].append(m)
    n_rest = sum(len(v) for c, v in by.items() if c not in keep_all)
    budget = max(0, size - sum(len(by[c]) for c in keep_all if c in by))
    out = []
    for c, v in by.items():
        if c in keep_all:
            out += v
            continue
        n = max(3, round(len(v) * budget / max(1, n_rest)))
        step = len(v) / n
        out += [v[int(i * step)] for i in range(n)]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, help="write the markdown report here")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, help="only every n-th mutant")
    ap.add_argument("--subset", type=int, help="a representative subset of about this many mutants")
    ap.add_argument("--only", help="only mutants whose class contains this text")
    ap.add_argument("--keep-failures", type=Path, help="copy the folders of DEFECT mutants here")
    args = ap.parse_args(argv)
    src = load_source(args.source)
    muts = build_corpus(src)
    if args.only:
        muts = [m for m in muts if args.only in m.mclass or args.only in m.name]
    if args.limit:
        muts = muts[::args.limit]
    if args.subset:
        muts = representative_subset(muts, args.subset)
    t0 = time.monotonic()
    results = run_corpus(muts, src, workers=args.workers, keep_failures=args.keep_failures)
    elapsed = time.monotonic() - t0
    secs = sorted(r["seconds"] for r in results)
    summary = (f"{len(results)} mutants of {args.source.name} ({len(src.files)} slices) in {elapsed:.0f} s with "
               f"{args.workers} workers; per mutant median {secs[len(secs) // 2]:.2f} s, max {secs[-1]:.2f} s")
    text = "\n".join([table(results), "", placement_table(results), "", summary, details(results)])
    print(text)
    if args.out:
        args.out.write_text(REPORT_HEAD.format(summary=summary) + table(results) + "\n\n" + placement_table(results)
                            + "\n\n" + limits_text()
                            + "\n\n## Outcomes in detail (most frequent per class)\n" + details(results, 8) + "\n")
    return 1 if any(r["outcome"] == "DEFECT" for r in results) else 0


def limits_text() -> str:
    """The reader's limits and HU rules (osteoplan.imaging.dicom_series constants; reasons in their docstrings)."""
    from osteoplan.imaging import dicom_series as d

    return "\n".join([
        "## Limits and rules of the reader (module constants of `osteoplan/imaging/dicom_series.py`)",
        "",
        f"- RescaleSlope finite, in {d.RESCALE_SLOPE_RANGE[0]:g} .. {d.RESCALE_SLOPE_RANGE[1]:g}; RescaleIntercept "
        f"finite, in {d.RESCALE_INTERCEPT_RANGE_HU[0]:g} .. {d.RESCALE_INTERCEPT_RANGE_HU[1]:g} HU; both present "
        "(Type 1 for CT); rescaled pixels in "
        f"{d.PLAUSIBLE_HU_RANGE[0]:g} .. {d.PLAUSIBLE_HU_RANGE[1]:g} HU. Else: error naming the slice, or a stray "
        "copy dropped with a warning.",
        f"- Volume at most {d.MAX_VOLUME_VOXELS} voxels; slices within {d.MAX_EXTENT_MM:g} mm along the normal and "
        "across the plane (refused with the measured extent).",
        f"- Files: regular files only, at most {d.MAX_FILES}, each at most {d.MAX_FILE_BYTES >> 30} GiB, folders at "
        f"most {d.MAX_FOLDER_DEPTH} levels deep; NumberOfFrames at most {d.MAX_FRAMES}; sequences looked into "
        f"{d.MAX_SEQUENCE_DEPTH} levels deep.",
        f"- In-plane position noise up to {d.POSITION_NOISE_FRACTION:g} of the smaller pixel spacing is not a tilt.",
        "- All are configurable defaults without a published source; each constant's comment gives its reason.",
    ])


REPORT_HEAD = """# DICOM reader mutation corpus (issue 18)

Made by `benchmarks/dicom_mutation.py` (read its docstring for the classes, placements and outcome rules).
Every mutant is read in a forked child limited to {limit:g} s and {mem} GiB of address space by
`osteoplan info --json` (the report must be valid JSON under 1 MiB, one error line at most, no "unexpected"
error); the volume it reads (the `read_series` call `read_volume` makes) is compared with the clean one. Tolerances: HU {hu:g}, geometry {geo:g} mm at the corner voxels. A path or the patient-like
folder name (`{folder}`) anywhere in stdout, stderr, warnings or log records is a DEFECT.

{{summary}}

""".format(limit=TIME_LIMIT_S, mem=MEMORY_LIMIT_BYTES >> 30, hu=HU_TOL, geo=GEOMETRY_TOL_MM, folder=PATIENT_FOLDER)


if __name__ == "__main__":
    sys.exit(main())
