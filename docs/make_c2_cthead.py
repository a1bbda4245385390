"""Rebuild docs/c2_cthead.png: the C2 mask and dens landmarks found on the shared CThead CT.

Runs the planner's anatomy (``build_anatomy``, classical, no masks) on ``../shared/data/cthead/ct.nii.gz``
and draws :func:`osteoplan.anatomy.c2.plot_c2` (sagittal and coronal reformats through the dens,
anterior left / patient right on the left, superior up). Prints the landmarks and the
anteroinferior-to-apex distance.

Usage::

    .venv/bin/python docs/make_c2_cthead.py [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv=None) -> int:
    from osteoplan.anatomy.c2 import plot_c2
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.imaging import read_volume
    from osteoplan.shared_data import shared_data_dir

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "c2_cthead.png"
    d = shared_data_dir()
    if d is None or not (d / "cthead" / "ct.nii.gz").exists():
        print("../shared/data/cthead/ct.nii.gz is absent", file=sys.stderr)
        return 1
    vol = read_volume(d / "cthead" / "ct.nii.gz")
    an = build_anatomy(vol)
    if an.landmarks is None:
        print("; ".join(m for m in an.messages if m.startswith("C2")), file=sys.stderr)
        return 1
    lm = an.landmarks
    plot_c2(vol, an.labelmap.get("vertebrae_C2"), lm, out, title="CThead C2 / dens (classical)")
    for name in ("apex_lps_mm", "waist_lps_mm", "anteroinferior_body_lps_mm", "body_centre_lps_mm"):
        p = getattr(lm, name)
        print(f"{name:28} LPS {p.round(1)}  voxel (k, j, i) {vol.world_to_index(p).round(1)}")
    print(f"anteroinferior to apex {lm.anteroinferior_to_apex_mm:.1f} mm, waist {lm.waist_diameter_mm:.1f} mm, "
          f"confidence {lm.confidence:.2f}; notes: {list(lm.notes)}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
