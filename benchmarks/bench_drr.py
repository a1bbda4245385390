"""DRR benchmark: a 512 x 512 simulated fluoroscopy image of CThead on the CPU.

Compares, in the same run and on the same C-arm geometry:

* osteoplan's renderer (:func:`osteoplan.views.drr.render_drr`: numba ray marching, trilinear, step 0.5 mm);
* a SimpleITK renderer: the volume resampled (``sitk.Resample``, linear) onto the perspective beam
  geometry, one detector-shaped plane per depth step (planes perpendicular to the central ray, spacing
  scaled by depth / SDD so that every pixel follows its own ray), then summed with the 1/cos(ray angle)
  path-length weight.

Both produce the line integral of mu (1/mm) along each ray; the table gives the time of each, the ratio
and how far the two images differ. Usage::

    .venv/bin/python benchmarks/bench_drr.py [--pixels 512] [--step 0.5] [--repeat 3]
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
    from osteoplan.views.drr import render_drr, standard_geometry

    root = shared_data_dir()
    if root is None or not (root / "cthead" / "ct.nii.gz").is_file():
        print("shared data (cthead/ct.nii.gz) is absent; nothing to benchmark", file=sys.stderr)
        return 1
    numba.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    vol = read_volume(root / "cthead" / "ct.nii.gz")
    target = vol.index_to_world(np.array([80.0, 122.0, 105.0]))  # about the dens of C2 (slices 78-98)
    print(f"CThead {vol.shape} voxels, spacing {tuple(float(s) for s in vol.spacing_mm)} mm; "
          f"{args.pixels}x{args.pixels} detector, step {args.step} mm, {args.threads} thread(s), "
          f"best of {args.repeat}")
    print(f"{'view':<14}{'renderer':<34}{'time (s)':>10}{'ratio':>9}{'mean |diff| / mean':>21}{'CPU (s)':>10}")
    for view in args.views.split(","):
        geo = standard_geometry(view, target, n_pixels=(args.pixels, args.pixels))
        render_drr(vol, geo, step_mm=args.step)  # JIT warm-up (cached after the first run)
        t_o, c_o = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            a = render_drr(vol, geo, step_mm=args.step)
            t_o.append(time.perf_counter() - t0)
            c_o.append(time.process_time() - c0)
        t_s, c_s = [], []
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            b = sitk_drr(vol, geo, args.step)
            t_s.append(time.perf_counter() - t0)
            c_s.append(time.process_time() - c0)
        diff = float(np.abs(a - b).mean() / max(b.mean(), 1e-9))
        to, ts = min(t_o), min(t_s)
        print(f"{view:<14}{'osteoplan numba ray-march':<34}{to:>10.3f}{1.0:>9.2f}{'':>21}{min(c_o):>10.3f}")
        print(f"{'':<14}{'SimpleITK Resample depth planes':<34}{ts:>10.3f}{ts / to:>9.2f}{diff:>21.4f}{min(c_s):>10.3f}")
    print("ratio = time / osteoplan time (higher = osteoplan faster); CPU = process CPU time (all threads), "
          "less sensitive to the load of a shared machine than the wall time")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OSTEOPLAN_QUIET", "1")
    sys.exit(main())
