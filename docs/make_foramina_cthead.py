"""Rebuild docs/transverse_foramina_cthead.png: the bony canal of the vertebral arteries found on CThead.

Runs the planner's anatomy (``build_anatomy``, classical, no masks) on
``../shared/data/cthead/ct.nii.gz`` and draws the transverse foramina (``vertebral_artery_canal_left``
red, ``_right`` green; foramina outlined solid, bridges and C1 sulcus dashed) on the axial slices
through the C1, C2 and C3 foramina and on a coronal reformat through them. Radiological convention:
patient LEFT on the image RIGHT (labelled), anterior up on the axial slices, superior up on the
coronal one. Prints the per-foramen figures.

Usage::

    .venv/bin/python docs/make_foramina_cthead.py [OUT.png]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from osteoplan.anatomy.foramina import segment_transverse_foramina
    from osteoplan.anatomy.pipeline import build_anatomy
    from osteoplan.anatomy.segment import Canon, segment_bone
    from osteoplan.imaging import read_volume
    from osteoplan.shared_data import shared_data_dir

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent / "transverse_foramina_cthead.png"
    d = shared_data_dir()
    if d is None or not (d / "cthead" / "ct.nii.gz").exists():
        print("../shared/data/cthead/ct.nii.gz is absent", file=sys.stderr)
        return 1
    vol = read_volume(d / "cthead" / "ct.nii.gz")
    an = build_anatomy(vol)
    lm = an.labelmap
    if not lm.has("vertebral_artery_canal_left"):
        print("no bony canal segmented", file=sys.stderr)
        return 1
    # the foramina alone (for the solid outlines and the figures), as build_anatomy ran them
    bone = segment_bone(vol)
    verts = {"C2": lm.get("vertebrae_C2")} if lm.has("vertebrae_C2") else None
    fr = segment_transverse_foramina(vol, bone.bone, lm.get("spinal_canal"), vertebrae=verts,
                                     wall_threshold_hu=bone.cancellous_threshold_hu)
    for f in fr.foramina:
        print(f.to_dict())
    cn = Canon.of(vol)
    a = cn.to_canon(vol.array)
    full = {s: cn.to_canon(lm.get(f"vertebral_artery_canal_{s}")) for s in ("left", "right")}
    only = {"left": cn.to_canon(fr.foramina_left), "right": cn.to_canon(fr.foramina_right)}
    col = {"left": "red", "right": "lime"}
    # axial slices through the C1, C2, C3 foramina (the slice of largest section per level)
    picks = []
    for lv in ("C1", "C2", "C3"):
        fs = [f for f in fr.foramina if f.level == lv]
        if fs:
            z = float(np.mean([f.centre_lps_mm[2] for f in fs]))
            k_c = int(round(cn.index_from_original(vol.world_to_index(np.array([[0.0, 0.0, z]])))[0, 0]))
            picks.append((lv, k_c))
    allm = only["left"] | only["right"]
    pts = np.argwhere(allm)
    j0, j1 = pts[:, 1].min() - 25, pts[:, 1].max() + 30
    i0, i1 = pts[:, 2].min() - 25, pts[:, 2].max() + 25
    fig, axs = plt.subplots(1, len(picks) + 1, figsize=(4.6 * (len(picks) + 1), 5.2))
    sp = cn.spacing_mm
    for ax, (lv, k) in zip(axs, picks):
        img = a[k, j0:j1, i0:i1]
        ax.imshow(img, cmap="gray", vmin=-200, vmax=1300, extent=(i0 - .5, i1 - .5, j1 - .5, j0 - .5))
        for s in ("left", "right"):
            if full[s][k].any():
                ax.contour(np.arange(i0, i1), np.arange(j0, j1), full[s][k, j0:j1, i0:i1], [0.5], colors=col[s],
                           linewidths=0.8, linestyles="dashed")
            if only[s][k].any():
                ax.contour(np.arange(i0, i1), np.arange(j0, j1), only[s][k, j0:j1, i0:i1], [0.5], colors=col[s],
                           linewidths=1.6)
        z = vol.index_to_world(cn.index_to_original(np.array([[k, 0, 0]], float)))[0, 2]
        ax.set_title(f"axial through the {lv} foramina (z = {z:.0f} mm)", fontsize=9)
        ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=14, va="center")
        ax.text(0.95, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=14, va="center")
        ax.text(0.5, 0.97, "A", transform=ax.transAxes, color="yellow", fontsize=11, ha="center", va="top")
        ax.set_xticks([])
        ax.set_yticks([])
    # coronal reformat: slab of +-4 mm around the mean y of the foramina (max projection of the masks)
    jc = int(round(pts[:, 1].mean()))
    half = max(1, int(round(4.0 / sp[1])))
    ks = np.nonzero(allm.any(axis=(1, 2)))[0]
    k0, k1 = max(ks.min() - 12, 0), min(ks.max() + 12, a.shape[0])
    ax = axs[-1]
    img = a[k0:k1, jc, i0:i1][::-1]
    ax.imshow(img, cmap="gray", vmin=-200, vmax=1300, aspect=sp[0] / sp[2],
              extent=(i0 - .5, i1 - .5, k0 - .5, k1 - .5))
    for s in ("left", "right"):
        for m, ls, lw in ((full[s], "dashed", 0.8), (only[s], "solid", 1.6)):
            proj = m[k0:k1, jc - half:jc + half + 1, i0:i1].any(axis=1)
            if proj.any():
                ax.contour(np.arange(i0, i1), np.arange(k0, k1), proj, [0.5], colors=col[s], linewidths=lw,
                           linestyles=ls)
    ax.set_title(f"coronal slab +-4 mm through the foramina (superior up)", fontsize=9)
    ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=14, va="center")
    ax.text(0.95, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=14, va="center")
    ax.set_xticks([])
    ax.set_yticks([])
    handles = [Line2D([], [], color="red", lw=1.6, label="left transverse foramen (patient left)"),
               Line2D([], [], color="lime", lw=1.6, label="right transverse foramen (patient right)"),
               Line2D([], [], color="gray", lw=0.8, ls="dashed", label="bridge between foramina / C1 sulcus")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9)
    fig.suptitle("CThead: bony canal of the vertebral arteries (classical), radiological convention: "
                 "patient LEFT on the image RIGHT", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    print(f"written {out.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
