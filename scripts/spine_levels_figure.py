"""Figure: vertebra levels named without masks on spine-chest-lidc (docs/spine_levels_lidc.png).

Left: sagittal section through the vertebral bodies with the discs found and the level names.
Right: coronal maximum-intensity projection of the posterior chest (bone), with the medial ends of the ribs
found (dots) and the same level names: count the ribs on it to check the naming. Head up; patient left (L)
on the image's right. Run: PYTHONPATH=. python scripts/spine_levels_figure.py [ct] [out.png]
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from osteoplan.anatomy.labelmap import LabelMap  # noqa: E402
from osteoplan.anatomy.segment import Canon  # noqa: E402
from osteoplan.anatomy.spine_classical import classical_vertebrae  # noqa: E402
from osteoplan.imaging.io import read_volume  # noqa: E402

ct = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/spine-chest-lidc/ct.nii.gz"
out = sys.argv[2] if len(sys.argv) > 2 else "docs/spine_levels_lidc.png"
v = read_volume(ct)
lm = LabelMap(v)
msgs: list[str] = []
cl = classical_vertebrae(v, lm, None, msgs)
P = cl.profile
cn = Canon.of(v)
a = cn.to_canon(v.array)
sp = cn.spacing_mm
i0 = int(np.median(P["body_i"]))
fig, axs = plt.subplots(1, 2, figsize=(14, 10))
sag = a[:, :, max(i0 - 2, 0):i0 + 3].mean(2)
axs[0].imshow(sag, cmap="gray", vmin=-150, vmax=1000, origin="lower", aspect=sp[0] / sp[1])
for d in P["discs_k"]:
    axs[0].axhline(d, color="y", lw=0.5)
for n_i, (d0, d1) in enumerate(P["intervals"]):
    name = P["names"].get(n_i, "?")
    axs[0].text(P["body_j"][(d0 + d1) // 2] - 70, (d0 + d1) / 2, name, color="yellow", fontsize=10, va="center")
axs[0].set_title("sagittal through the bodies: discs found (lines), levels named")
axs[0].text(0.02, 0.98, "anterior", color="w", transform=axs[0].transAxes, va="top")
axs[0].text(0.98, 0.98, "posterior", color="w", transform=axs[0].transAxes, va="top", ha="right")
# coronal MIP behind the front of the bodies
J = a.shape[1]
front = int(np.min(P["body_j"]) - 10 / sp[1])
cor = a[:, max(front, 0):, :].max(axis=1)
axs[1].imshow(cor, cmap="gray", vmin=0, vmax=1100, origin="lower", aspect=sp[0] / sp[2])
ci = float(np.median(P["canal_i"]))
for side, sg in (("left", 1), ("right", -1)):
    ks = sorted(k for k, sd in P["ribs"] if sd == side)
    for n, k_end in enumerate(ks):
        x = ci + sg * 45 / sp[2]
        axs[1].plot(x, k_end, "r.", ms=8)
        axs[1].text(x + sg * 8, k_end, f"{12 - n}?", color="r", fontsize=8, va="center",
                    ha="left" if sg > 0 else "right")
for n_i, (d0, d1) in enumerate(P["intervals"]):
    axs[1].text(ci, (d0 + d1) / 2, P["names"].get(n_i, "?"), color="yellow", fontsize=9, ha="center", va="center")
axs[1].set_title("coronal MIP (posterior chest): rib ends found (red, numbered up from the lowest = 12)")
axs[1].text(0.02, 0.5, "R", color="w", fontsize=16, transform=axs[1].transAxes)
axs[1].text(0.95, 0.5, "L", color="w", fontsize=16, transform=axs[1].transAxes)
fig.suptitle(f"{cl.method}, confidence {cl.confidence:.2f}; head up", fontsize=11)
plt.tight_layout()
plt.savefig(out, dpi=70)
print("\n".join(msgs))
print("ribs per level:", cl.ribs)
