"""Read ../shared/data/cthead/dicom/clean with osteoplan and with SimpleITK's ImageSeriesReader.

Both readers do the full job in the same run: find the series files in the folder, sort them,
decode the pixels and build the volume (osteoplan also converts to float32 HU and checks the
geometry). Several repeats; the median is reported, with the ratio osteoplan / SimpleITK.
The two volumes are also compared voxel by voxel.

    .venv/bin/python benchmarks/bench_read_dicom.py [--repeats 9] [--folder PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def read_osteoplan(folder: Path):
    from osteoplan.imaging import read_volume

    return read_volume(folder)


def read_sitk(folder: Path):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    files = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(files)
    return reader.Execute()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--folder", type=Path, default=None)
    args = ap.parse_args(argv)
    folder = args.folder
    if folder is None:
        from osteoplan.shared_data import shared_data_dir

        d = shared_data_dir()
        if d is None:
            print("../shared/data is absent; pass --folder", file=sys.stderr)
            return 2
        folder = d / "cthead" / "dicom" / "clean"
    n_files = sum(1 for p in folder.iterdir() if p.is_file())

    # warm-up (imports, file cache) then interleaved repeats so both see the same machine load
    vol = read_osteoplan(folder)
    img = read_sitk(folder)
    times = {"osteoplan": [], "SimpleITK": []}
    cpu = {"osteoplan": [], "SimpleITK": []}
    for _ in range(args.repeats):
        for name, fn in (("osteoplan", read_osteoplan), ("SimpleITK", read_sitk)):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(folder)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)

    from osteoplan.imaging import Volume

    ref = Volume.from_sitk(img)
    same = np.array_equal(ref.array, vol.array) and np.allclose(ref.affine, vol.affine, atol=1e-6)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["osteoplan"] / med["SimpleITK"]
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"Reading {folder.name}: {n_files} files, volume {vol.shape} (k, j, i); {args.repeats} repeats, median")
    print()
    print(f"| reader                          | median s | min s  | max s  | median CPU s |")
    print(f"|---------------------------------|----------|--------|--------|--------------|")
    for name, label in (("osteoplan", "osteoplan read_volume"), ("SimpleITK", "SimpleITK ImageSeriesReader")):
        ts = times[name]
        print(f"| {label:<31} | {med[name]:8.3f} | {min(ts):6.3f} | {max(ts):6.3f} | {med_cpu[name]:12.3f} |")
    print()
    print(f"ratio osteoplan / SimpleITK (median wall): {ratio:.2f}  (target <= 1.0)")
    print(f"ratio osteoplan / SimpleITK (median CPU, all threads of the process: the work done, less sensitive to "
          f"a shared machine's load): {med_cpu['osteoplan'] / max(med_cpu['SimpleITK'], 1e-9):.2f}")
    print(f"identical voxels and geometry: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
