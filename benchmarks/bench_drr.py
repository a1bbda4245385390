"""DRR benchmark: a 512 x 512 simulated fluoroscopy image of CThead on the CPU.

Compares, in the same run and on the same C-arm geometry:

* osteoplan's renderer (:func:`osteoplan.views.drr.render_drr`, default: Joseph's method, one bilinear sample
  per voxel plane of the ray's dominant axis, numba), the CT's attenuation prepared once per plan
  (:func:`osteoplan.views.drr.prepare_drr`, timed apart) and shared by the views;
* the former osteoplan renderer (the same function with ``step_mm``: fixed-step ray marching, trilinear);
* a SimpleITK renderer: the volume resampled (``sitk.Resample``, linear) onto the perspective beam
  geometry, one detector-shaped plane per depth step (planes perpendicular to the central ray, spacing
  scaled by depth / SDD so that every pixel follows its own ray), then summed with the 1/cos(ray angle)
  path-length weight.

All produce the line integral of mu (1/mm) along each ray; the table gives the time of each, the ratio
and how far the images differ from osteoplan's (mean and max |difference| over the mean / max optical depth).
Usage::

    .venv/bin/python benchmarks/bench_drr.py [--pixels 512] [--step 0.5] [--repeat 3]

``--step`` is the ray step of the fixed-step and SimpleITK renderers.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def sitk_drr(volume, geo, step_mm: float) -> np.ndarray:
    """Perspective DRR by SimpleITK resampling onto depth planes of the beam (see module docstring)."""
    import SimpleITK as sitk

    from osteoplan.views.drr import hu_to_mu

    img = volume.with_array(hu_to_mu(volume.array)).to_sitk()
    nc, nr = geo.n_pixels
    pc, pr = geo.pixel_mm
    src = geo.source_lps_mm
    d, u, v = geo.direction, geo.detector_u, geo.detector_v
    # depth range covering the volume along the central ray direction
    lo, hi = volume.bounds_lps_mm()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    depths = (corners - src) @ d
    s0, s1 = max(depths.min() - 2.0, 1.0), depths.max() + 2.0
    n = int(np.ceil((s1 - s0) / step_mm))
    # path length through a depth slab of thickness step for the ray of pixel (r, c): step / cos(theta)
    c = (np.arange(nc) - (nc - 1) / 2.0) * pc
    r = (np.arange(nr) - (nr - 1) / 2.0) * pr
    cos_t = geo.source_detector_mm / np.sqrt(geo.source_detector_mm ** 2 + r[:, None] ** 2 + c[None, :] ** 2)
    acc = np.zeros((nr, nc), np.float64)
    direction = np.stack([u, v, d], axis=1).ravel().tolist()  # ITK: columns = index axes (x=col, y=row, z)
    res = sitk.ResampleImageFilter()
    res.SetInterpolator(sitk.sitkLinear)
    res.SetDefaultPixelValue(0.0)
    res.SetSize((nc, nr, 1))
    res.SetOutputDirection(direction)
    for k in range(n):
        s = s0 + (k + 0.5) * step_mm
        scale = s / geo.source_detector_mm
        centre = src + d * s
        origin = centre - u * (nc - 1) / 2.0 * pc * scale - v * (nr - 1) / 2.0 * pr * scale
        res.SetOutputOrigin(origin.tolist())
        res.SetOutputSpacing((pc * scale, pr * scale, 1.0))
        plane = sitk.GetArrayFromImage(res.Execute(img))[0]  # a copy: the view would outlive the image
        acc += plane
    return (acc * step_mm / cos_t).astype(np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=512)
    ap.add_argument("--step", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="threads for both renderers (default 1: one core)")
    ap.add_argument("--views", default="lateral,ap_open_mouth", help="comma-separated standard views")
    args = ap.parse_args(argv)

    import numba
    import SimpleITK as sitk

    from osteoplan.imaging import read_volume
    from osteoplan.shared_data import shared_data_dir
    from osteoplan.views.drr import prepare_drr, render_drr, standard_geometry

    root = shared_data_dir()
    if root is None or not (root / "cthead" / "ct.nii.gz").is_file():
        print("shared data (cthead/ct.nii.gz) is absent; nothing to benchmark", file=sys.stderr)
        return 1
    numba.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    vol = read_volume(root / "cthead" / "ct.nii.gz")
    target = vol.index_to_world(np.array([80.0, 122.0, 105.0]))  # about the dens of C2 (slices 78-98)
    path_dir = np.array([-0.4, -0.8, 0.45])  # an anterior-inferior oblique path for the bull's-eye / progression views
    print(f"CThead {vol.shape} voxels, spacing {tuple(float(s) for s in vol.spacing_mm)} mm; "
          f"{args.pixels}x{args.pixels} detector, fixed step {args.step} mm, {args.threads} thread(s), "
          f"best of {args.repeat}")
    c0 = time.process_time()
    prep = prepare_drr(vol)
    print(f"attenuation prepared once per plan (HU -> mu, one padded copy): {time.process_time() - c0:.3f} s CPU")
    print()
    print(f"| view | renderer | wall s | CPU s | CPU ratio to osteoplan | mean abs diff / mean | max abs diff / max |")
    print("|---|---|---:|---:|---:|---:|---:|")

    def best(fn):
        walls, cpus, out = [], [], None
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            out = fn()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        return out, min(walls), min(cpus)

    for view in args.views.split(","):
        geo = standard_geometry(view, target, path_dir, n_pixels=(args.pixels, args.pixels))
        render_drr(prep, geo)  # JIT warm-up (cached after the first run)
        render_drr(vol, geo, step_mm=args.step)
        a, w_o, c_o = best(lambda: render_drr(prep, geo))
        rows = [("osteoplan Joseph (prepared)", a, w_o, c_o)]
        rows.append(("osteoplan former fixed-step", *best(lambda: render_drr(vol, geo, step_mm=args.step))))
        rows.append(("SimpleITK Resample depth planes", *best(lambda: sitk_drr(vol, geo, args.step))))
        for i, (name, img, w, c) in enumerate(rows):
            d = np.abs(img - a)
            diffs = ("", "") if i == 0 else (f"{d.mean() / max(float(a.mean()), 1e-9):.4f}",
                                             f"{d.max() / max(float(a.max()), 1e-9):.4f}")
            print(f"| {view if i == 0 else ''} | {name} | {w:.3f} | {c:.3f} | {c / max(c_o, 1e-9):.2f} | "
                  f"{diffs[0]} | {diffs[1]} |")
    print("\nCPU = process CPU time (all threads), less sensitive to the load of a shared machine than the wall time; "
          "ratio > 1: osteoplan faster")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OSTEOPLAN_QUIET", "1")
    sys.exit(main())
