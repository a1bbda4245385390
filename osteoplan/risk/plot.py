"""Figure of the CT rigidity profile along the dens axis (actual vs reference, loss, 35 % line)."""

from __future__ import annotations

from pathlib import Path

from osteoplan.risk.rigidity import RigidityProfile


def plot_rigidity_profile(profile: RigidityProfile, path: str | Path, title: str = "C2: CT structural rigidity") -> Path:
    """Write a PNG: EA, EI_min and GJ (actual and reference) and their losses along the dens axis.

    Parameters
    ----------
    profile : RigidityProfile
    path : str or Path
        Output PNG (written atomically).
    title : str
        Figure title (never put identifying data in it).

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from osteoplan.atomic import atomic_write_bytes

    s = [x.s_mm for x in profile.sections]
    fig, axes = plt.subplots(1, 4, figsize=(13, 4.2), sharey=True, constrained_layout=True)
    specs = (("EA (kN)", lambda r: r.ea_n / 1e3), ("EI_min (N·m²)", lambda r: r.ei_min_nmm2 / 1e6),
             ("GJ (N·m²)", lambda r: r.gj_nmm2 / 1e6))
    for ax, (label, f) in zip(axes, specs):
        ax.plot([f(x.reference) for x in profile.sections], s, "--", color="0.5", label="reference")
        ax.plot([f(x.actual) for x in profile.sections], s, "-", color="C0", label="actual")
        ax.set_xlabel(label + ", log scale")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("s: mm from the dens waist (+ towards apex)")
    axes[0].legend(loc="lower right", fontsize=8)
    ax = axes[3]
    ax.plot([100 * x.loss_ea for x in profile.sections], s, label="EA")
    ax.plot([100 * x.loss_ei_min for x in profile.sections], s, label="EI_min")
    ax.plot([100 * x.loss_gj for x in profile.sections], s, label="GJ")
    ax.axvline(100 * profile.threshold, color="C3", lw=1, ls=":", label="35 % (Snyder 2006)")
    ax.set_xlim(0, 100)
    ax.set_xlabel("loss vs reference (%)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    for a in axes:
        a.axhline(0.0, color="k", lw=0.6)
    w = profile.weakest
    if w is not None and profile.lesion_status == "present":
        for a in axes:
            a.axhline(w.s_mm, color="C3", lw=0.8, alpha=0.6)
    fig.suptitle(f"{title} - {profile.summary()}", fontsize=9)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    out = Path(path)
    atomic_write_bytes(out, buf.getvalue())
    return out
