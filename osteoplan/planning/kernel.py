"""The hot loop of the trajectory search, compiled with numba.

For each candidate (target point, unit direction) the kernel marches from the target back towards
the skin at a fixed step, reading the ROI maps with trilinear interpolation:

1. the depth march inside the target bone (signed depth map > 0) to the bone entry, the zero crossing of
   the depth map (linear interpolation between samples); runs of more than ``JUMP_MIN`` samples that a Lipschitz
   bound of the depth map proves inside the bone are not read (exact: the crossing sample and the one before it are
   read);
2. the bone-entry rule (entry zone, implant length, incidence): a candidate that breaks it stops here
   (code ``BAD_ENTRY``): its lesion length, clearances, containment and tip gap are not computed -- it is
   excluded whatever they are, and most candidates are;
3. for the others, every sample inside the bone: containment margin of the implant, lesion length, the
   cortex ahead of the tip; then beyond the bone entry: other bone crossed, until the body mask drops below
   0.5 (skin entry);
4. along the whole path: for every structure map, min(distance - instrument radius) = clearance
   of the instrument modelled as a capsule (cylinder + hemispherical ends) around the path axis.

The search's dense pass (``clear_gate`` >= 0) measures step 4 only for candidates within the gate of the
containment and tip-to-cortex rules (the others are neither feasible nor near-feasible, whatever their
clearances). Candidates are evaluated direction by direction
(``order``: parallel paths from neighbouring targets read the same memory). None of this changes a figure that is
computed.

Exact shortcuts (each leaves every output bit-identical to reading every sample; see
``tests/planning/test_kernel.py::test_depth_skipping_and_cell_flags_change_no_output``):

* the containment minimum takes the depths the march already read; a sample the march skipped is read only when
  the Lipschitz bound from the last depth known does not prove it larger than the minimum so far;
* in soft tissue the body, other-bone and depth values are interpolated from one cell computation (the same
  arithmetic as :func:`_tri`, in the same order), and not at all where the cell's 8 corners prove the answer
  (:func:`_cell_flags`: body >= 0.5; no other bone); the body at the sample before the skin crossing is read again
  when it was not read;
* jumps are taken only when long: a jump's length depends on the value just read, which makes the processor wait
  for each read, whereas independent consecutive samples are read in parallel (on CThead a jump of 2-3 samples
  cost more than the reads it saved).

Sampling at step ``h`` overestimates a minimum distance by at most ``h / 2`` (a distance map is
1-Lipschitz); the planner re-evaluates its final candidates at a finer step.

A plain-Python reference implementation of the same computation, :func:`evaluate_python`, is
kept for the benchmark and the tests.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: result codes
OK, NO_SKIN, TARGET_OUTSIDE_BONE, NEVER_LEAVES_BONE, BAD_ENTRY = 0, 1, 2, 3, 4
#: length of the packed entry rule's head before the targets (see :func:`evaluate_candidates`)
ENTRY_HEAD = 24
#: the depth march and the march to the cortex ahead of the tip jump over the samples the Lipschitz bound proves inside
#: the bone only when the jump skips more than this many samples (speed only: any jump the bound allows gives the
#: same samples at the crossing; short jumps cost more than the reads they save, see evaluate_candidates)
JUMP_MIN = 3.0


@nb.njit(cache=True, nogil=True, inline="always")
def _cell(K, J, I, k, j, i):
    """The trilinear cell of index point (k, j, i) on a (K, J, I) grid, clamped to the grid: the low corner
    (k0, j0, i0), the high corner (k1, j1, i1) and the fractions (fk, fj, fi) that :func:`_lerp` weights."""
    if k < 0.0:
        k = 0.0
    if j < 0.0:
        j = 0.0
    if i < 0.0:
        i = 0.0
    if k > K - 1.0:
        k = K - 1.0
    if j > J - 1.0:
        j = J - 1.0
    if i > I - 1.0:
        i = I - 1.0
    k0 = min(int(k), K - 2) if K > 1 else 0
    j0 = min(int(j), J - 2) if J > 1 else 0
    i0 = min(int(i), I - 2) if I > 1 else 0
    k1 = k0 + 1 if K > 1 else k0
    j1 = j0 + 1 if J > 1 else j0
    i1 = i0 + 1 if I > 1 else i0
    return k0, j0, i0, k1, j1, i1, k - k0, j - j0, i - i0


@nb.njit(cache=True, nogil=True, inline="always")
def _tri(a, k, j, i):
    K, J, I = a.shape
    k0, j0, i0, k1, j1, i1, fk, fj, fi = _cell(K, J, I, k, j, i)
    return _lerp(a, k0, j0, i0, k1, j1, i1, fk, fj, fi)


@nb.njit(cache=True, nogil=True, inline="always")
def _lerp(a, k0, j0, i0, k1, j1, i1, fk, fj, fi):
    """:func:`_tri`'s interpolation on a cell already located (the same arithmetic, in the same order: the same
    value), so that several volumes of one shape are read at a sample with one cell computation."""
    c00 = a[k0, j0, i0] * (1 - fi) + a[k0, j0, i1] * fi
    c01 = a[k0, j1, i0] * (1 - fi) + a[k0, j1, i1] * fi
    c10 = a[k1, j0, i0] * (1 - fi) + a[k1, j0, i1] * fi
    c11 = a[k1, j1, i0] * (1 - fi) + a[k1, j1, i1] * fi
    c0 = c00 * (1 - fj) + c01 * fj
    c1 = c10 * (1 - fj) + c11 * fj
    return c0 * (1 - fk) + c1 * fk


@nb.njit(cache=True, nogil=True, inline="always")
def _cell_flags(body, other, boned, k0, j0, i0, k1, j1, i1):
    """What the 8 corners of a cell prove about any sample whose cell it is: ``1 | 2`` when every corner of *body* is
    >= 1 (the interpolated body is >= 0.5: inside the body), ``| 4`` when every corner of *other* is 0 and every
    corner of *boned* <= 0 (the interpolated other bone is 0 < 0.5 and the depth <= 0: no other bone counted;
    products of non-negative weights and non-positive values, and their sums, are <= 0 in floating point too)."""
    f = 1
    if (body[k0, j0, i0] >= 1 and body[k0, j0, i1] >= 1 and body[k0, j1, i0] >= 1 and body[k0, j1, i1] >= 1
            and body[k1, j0, i0] >= 1 and body[k1, j0, i1] >= 1 and body[k1, j1, i0] >= 1 and body[k1, j1, i1] >= 1):
        f |= 2
    if (other[k0, j0, i0] == 0 and other[k0, j0, i1] == 0 and other[k0, j1, i0] == 0 and other[k0, j1, i1] == 0
            and other[k1, j0, i0] == 0 and other[k1, j0, i1] == 0 and other[k1, j1, i0] == 0
            and other[k1, j1, i1] == 0
            and boned[k0, j0, i0] <= 0.0 and boned[k0, j0, i1] <= 0.0 and boned[k0, j1, i0] <= 0.0
            and boned[k0, j1, i1] <= 0.0 and boned[k1, j0, i0] <= 0.0 and boned[k1, j0, i1] <= 0.0
            and boned[k1, j1, i0] <= 0.0 and boned[k1, j1, i1] <= 0.0):
        f |= 4
    return f


@nb.njit(cache=True, nogil=True, inline="always")
def _tri_min(maps, K, J, I, lo, k, j, i, r, out, n, soft_only, soft_ok):
    """out[n, s] = min(out[n, s], trilinear(maps[..., s]) - r) for every channel s, at the ROI position (k, j, i)
    clamped to the ROI (K, J, I); *maps* (K', J', I', S) holds the ROI box starting at *lo* (3,). Returns False,
    reading and writing nothing, when the cell's corners are not all in the box."""
    S = maps.shape[3]
    if k < 0.0:
        k = 0.0
    if j < 0.0:
        j = 0.0
    if i < 0.0:
        i = 0.0
    if k > K - 1.0:
        k = K - 1.0
    if j > J - 1.0:
        j = J - 1.0
    if i > I - 1.0:
        i = I - 1.0
    k0 = min(int(k), K - 2)
    j0 = min(int(j), J - 2)
    i0 = min(int(i), I - 2)
    fk = k - k0
    fj = j - j0
    fi = i - i0
    a0 = k0 - lo[0]
    b0 = j0 - lo[1]
    c0 = i0 - lo[2]
    if a0 < 0 or b0 < 0 or c0 < 0 or a0 + 1 >= maps.shape[0] or b0 + 1 >= maps.shape[1] or c0 + 1 >= maps.shape[2]:
        return False
    w000 = (1 - fk) * (1 - fj) * (1 - fi)
    w001 = (1 - fk) * (1 - fj) * fi
    w010 = (1 - fk) * fj * (1 - fi)
    w011 = (1 - fk) * fj * fi
    w100 = fk * (1 - fj) * (1 - fi)
    w101 = fk * (1 - fj) * fi
    w110 = fk * fj * (1 - fi)
    w111 = fk * fj * fi
    for s_ in range(S):
        if soft_only[s_] and not soft_ok:
            continue
        v = (w000 * maps[a0, b0, c0, s_] + w001 * maps[a0, b0, c0 + 1, s_]
             + w010 * maps[a0, b0 + 1, c0, s_] + w011 * maps[a0, b0 + 1, c0 + 1, s_]
             + w100 * maps[a0 + 1, b0, c0, s_] + w101 * maps[a0 + 1, b0, c0 + 1, s_]
             + w110 * maps[a0 + 1, b0 + 1, c0, s_] + w111 * maps[a0 + 1, b0 + 1, c0 + 1, s_]) - r
        if v < out[n, s_]:
            out[n, s_] = v
    return True


@nb.njit(cache=True, nogil=True)
def evaluate_candidates(t_idx, d_idx, cand_t, cand_d, h, s_max,
                        boned, body, other, lesion, maps, soft_only,
                        r_instr, r_screw, skip_mm, cont_margin, d_world, Minv, entry_rule,
                        tip_skip_mm, gap_max_mm, thread_mm, lip, clear_gate, gap_limit_mm, order,
                        lesion_box, maps_lo, out_code, out_sbone, out_sskin, out_cont, out_other, out_lesion, out_clear,
                        out_inc,
                        out_tipgap, out_lesion_thread, out_gated, out_outside):
    """Evaluate candidates ``n`` = (target ``cand_t[n]``, direction ``cand_d[n]``).

    Parameters
    ----------
    t_idx : (T, 3) float64, targets in ROI index (k, j, i).
    d_idx : (D, 3) float64, directions (skin -> target) as ROI index change per mm.
    cand_t, cand_d : (N,) int64, target and direction of each candidate.
    h : sample step (mm).  s_max : maximum skin-to-target depth (mm).
    boned : (K, J, I) float32 signed depth in the target bone (mm, + inside).
    body, other, lesion : (K, J, I) uint8 masks.
    maps : (K', J', I', S) float32 distance maps (channel last) on a box of the ROI (``maps_lo``); soft_only : (S,)
        bool (measured only outside the target bone).
    r_instr : instrument radius for clearances (mm); r_screw : screw radius for containment (mm).
    skip_mm : minimum length after the bone entry excluded from containment (mm); the excluded
        length grows to ``(r_screw + cont_margin) / sin(incidence)`` (capped at 15 mm) for oblique
        entries, incidence being the angle between the path and the target bone surface at the entry.
    d_world : (D, 3) unit directions in LPS; Minv : (3, 3) world -> index linear part (for the
        surface normal from the depth-map gradient).
    entry_rule : (ENTRY_HEAD + 3 T,) float64, empty to disable: [reference point xyz (LPS mm),
        axis unit xyz, anterior unit xyz, lateral unit xyz, axis_min, axis_max, anterior_min,
        anterior_max, lateral_abs_max (mm; +-1e9 = no bound), length_min_mm, length_max_mm,
        min_incidence_deg, 0, 0, 0, 0] followed by the targets in LPS mm (T x 3, flattened).
        Candidates whose bone entry leaves this box (in the reference frame), whose bone length is
        outside the range or whose incidence is too small stop after the depth march (code ``BAD_ENTRY``): their
        lesion lengths and clearances are not computed (0 and +1e9), they are excluded anyway; see
        :func:`osteoplan.planning.search.entry_rule_vector`.
    tip_skip_mm : the tip's last millimetres excluded from containment (the tip engages the cortex).
    gap_max_mm : when > 0, march from the target FORWARD (along the direction) at 0.25 mm until the
        C2 surface, up to this distance (samples proven inside the bone by ``lip`` skipped, exact): ``out_tipgap``
        = the distance from the tip to the cortex ahead (``gap_max_mm + 0.25`` when not reached). 0 disables it
        (``out_tipgap`` = 0).
    thread_mm : length from the tip over which ``out_lesion_thread`` counts the lesion (mm).
    lip : (3,) float64, the largest absolute difference of ``boned`` between neighbours along k, j, i (mm per
        index step): a bound on the trilinear interpolant's partial derivatives, so along a direction the depth
        changes by at most ``h * sum(lip * |d|)`` per sample. The depth march skips the samples this bound proves
        inside the bone when there are more than ``JUMP_MIN`` of them (exact: the first sample outside, and the one
        before it, are the same as a sample-by-sample march); the containment minimum skips the samples it proves
        above the minimum. Zeros disable the skipping (every output unchanged).
    clear_gate : mm; < 0 disables the gate. A candidate that passed the entry rule but whose containment
        (``cont_margin - out_cont``) or tip-to-cortex (``out_tipgap - gap_limit_mm``) shortfall exceeds it is not
        measured against the structures: ``out_clear`` stays +1e9 and ``out_gated`` = 1 (its bone figures, skin
        entry, other bone and code are computed as usual). Both rules come before every clearance in the order of
        "first failing constraint" counts, so those counts do not change. The search needs the clearances exactly
        only for candidates whose every violation is at most a sample step (feasible, near-feasible; see
        :func:`osteoplan.planning.search._search_one`).
    gap_limit_mm : the tip-to-cortex limit (mm) the gate uses; < 0 when the protocol has none.
    order : (N,) int64, the order in which the candidates are evaluated (empty: 0 .. N - 1); results are written
        at each candidate's own index. :func:`direction_major_order` keeps parallel paths from neighbouring targets
        one after the other, so they read the same memory (the results do not depend on the order).
    lesion_box : (6,) float64, (k, j, i) lower and upper bounds such that the lesion map is 0 at every voxel with an
        index <= the lower or >= the upper bound on some axis (:func:`osteoplan.planning.search.lesion_box`): the
        lesion is read only at samples whose (clamped) position is strictly inside, elsewhere it is exactly 0 (every
        corner of the cell is 0 or has weight 0).
        ``(-2, -2, -2, K + 1, J + 1, I + 1)`` reads it everywhere.
    maps_lo : (3,) int64, the ROI index of ``maps[0, 0, 0]``: *maps* holds a box of the ROI (the whole ROI: zeros).
        A sample is clamped to the ROI and its cell read in the box (outside it: ``out_outside``; see
        :func:`osteoplan.planning.search.measured_reach_box`).
    out_* : outputs, (N,) or (N, S) for ``out_clear``; ``out_inc`` incidence angle (deg); ``out_gated`` (N,)
        uint8, 1 where the gate left the clearances unmeasured; ``out_outside`` (N,) uint8, 1 where a sample's cell
        was not inside the maps' box (``maps_lo``): the measuring stopped there, ``out_clear`` is incomplete (every
        other output is computed); the caller measures those candidates again on a larger box.
    """
    N = cand_t.shape[0]
    S = maps.shape[3]
    K, J, I = body.shape
    nmax = int(s_max / h) + 2
    use_order = order.shape[0] == N
    # the depth at the samples the depth march read, for the containment minimum: dep[q] is valid when
    # seen[q] == the candidate's rank + 1 (no reset between candidates)
    dep = np.empty(nmax + 1, np.float64)
    seen = np.zeros(nmax + 1, np.int64)
    # per cell (lower corner), filled on first visit in phase 2: 0 unknown, else _cell_flags; allocated when the
    # first candidate reaches phase 2
    cflags = np.zeros((0, 0, 0), np.uint8)
    for n_ in range(N):
        n = order[n_] if use_order else n_
        t = t_idx[cand_t[n]]
        d = d_idx[cand_d[n]]
        for s_ in range(S):
            out_clear[n, s_] = 1e9
        out_other[n] = 0.0
        out_lesion[n] = 0.0
        out_lesion_thread[n] = 0.0
        out_tipgap[n] = 0.0
        out_gated[n] = 0
        out_outside[n] = 0
        prev = _tri(boned, t[0], t[1], t[2])
        if prev <= 0.0:
            out_code[n] = TARGET_OUTSIDE_BONE
            out_sbone[n] = 0.0
            out_sskin[n] = 0.0
            out_cont[n] = -1e9
            continue
        # ---- phase 1: inside the target bone, the depth only (the entry rule decides whether the rest is needed);
        # samples the Lipschitz bound proves inside the bone are skipped (see ``lip``)
        rate = h * (lip[0] * abs(d[0]) + lip[1] * abs(d[1]) + lip[2] * abs(d[2]))
        # a jump is taken only when it skips at least JUMP_MIN samples: a jump's length depends on the value just
        # read (a chain the processor must wait for), whereas consecutive samples are read in parallel
        jump_at = JUMP_MIN * rate if rate > 0.0 else np.inf
        tag = n_ + 1
        dep[0] = prev
        seen[0] = tag
        sbone = -1.0
        m = 1
        last_q = 0
        last_v = prev
        while m < nmax:
            s = m * h
            v = _tri(boned, t[0] - s * d[0], t[1] - s * d[1], t[2] - s * d[2])
            if v <= 0.0:
                if last_q != m - 1:  # the sample before the crossing was skipped: read it
                    s1 = (m - 1) * h
                    last_v = _tri(boned, t[0] - s1 * d[0], t[1] - s1 * d[1], t[2] - s1 * d[2])
                    dep[m - 1] = last_v
                    seen[m - 1] = tag
                sbone = s - h + h * last_v / (last_v - v)
                break
            dep[m] = v
            seen[m] = tag
            last_q = m
            last_v = v
            if v > jump_at:  # ceil(v / rate) > JUMP_MIN >= 1: the samples before m + jump are inside the bone
                m += int(math.ceil(v / rate))
            else:
                m += 1
        if sbone < 0.0:
            out_code[n] = NEVER_LEAVES_BONE
            out_sbone[n] = 0.0
            out_sskin[n] = 0.0
            out_cont[n] = -1e9
            continue
        # incidence at the bone entry: angle between the path and the target bone surface (depth gradient)
        ke = t[0] - sbone * d[0]
        je = t[1] - sbone * d[1]
        ie = t[2] - sbone * d[2]
        gk = (_tri(boned, ke + 0.5, je, ie) - _tri(boned, ke - 0.5, je, ie))
        gj = (_tri(boned, ke, je + 0.5, ie) - _tri(boned, ke, je - 0.5, ie))
        gi = (_tri(boned, ke, je, ie + 0.5) - _tri(boned, ke, je, ie - 0.5))
        gx = Minv[0, 0] * gk + Minv[1, 0] * gj + Minv[2, 0] * gi
        gy = Minv[0, 1] * gk + Minv[1, 1] * gj + Minv[2, 1] * gi
        gz = Minv[0, 2] * gk + Minv[1, 2] * gj + Minv[2, 2] * gi
        gn = math.sqrt(gx * gx + gy * gy + gz * gz)
        dw = d_world[cand_d[n]]
        sin_inc = abs(gx * dw[0] + gy * dw[1] + gz * dw[2]) / gn if gn > 1e-9 else 1.0
        if sin_inc > 1.0:
            sin_inc = 1.0
        out_inc[n] = math.degrees(math.asin(sin_inc))
        skip = (r_screw + cont_margin) / max(sin_inc, 1e-3)
        if skip < skip_mm:
            skip = skip_mm
        if skip > 15.0:
            skip = 15.0
        out_sbone[n] = sbone
        if entry_rule.shape[0] > 0:
            # bone entry (LPS mm) in the reference frame: axis [3:6], anterior [6:9], lateral [9:12]
            tw0 = entry_rule[ENTRY_HEAD + 3 * cand_t[n]]
            tw1 = entry_rule[ENTRY_HEAD + 1 + 3 * cand_t[n]]
            tw2 = entry_rule[ENTRY_HEAD + 2 + 3 * cand_t[n]]
            ex = tw0 - sbone * dw[0] - entry_rule[0]
            ey = tw1 - sbone * dw[1] - entry_rule[1]
            ez = tw2 - sbone * dw[2] - entry_rule[2]
            up = ex * entry_rule[3] + ey * entry_rule[4] + ez * entry_rule[5]
            antoff = ex * entry_rule[6] + ey * entry_rule[7] + ez * entry_rule[8]
            latoff = abs(ex * entry_rule[9] + ey * entry_rule[10] + ez * entry_rule[11])
            if (up < entry_rule[12] or up > entry_rule[13] or antoff < entry_rule[14] or antoff > entry_rule[15]
                    or latoff > entry_rule[16] or sbone < entry_rule[17]
                    or sbone > entry_rule[18] or out_inc[n] < entry_rule[19]):
                out_code[n] = BAD_ENTRY
                out_sskin[n] = 0.0
                out_cont[n] = 1e9  # not computed: excluded anyway
                continue
        # ---- phase 0 (valid entries only): the cortex ahead of the tip
        buf0 = prev  # the depth at the target (the same read)
        if gap_max_mm > 0.0:
            hf = 0.25
            gap = gap_max_mm + hf
            pv = buf0
            rate_f = rate * (hf / h)
            jump_f = JUMP_MIN * rate_f if rate_f > 0.0 else np.inf
            qf = 1
            last_f = 0
            nf = int(gap_max_mm / hf) + 2
            while qf < nf:  # samples the Lipschitz bound proves inside the bone are skipped, as in the depth march
                sf = qf * hf
                vf = _tri(boned, t[0] + sf * d[0], t[1] + sf * d[1], t[2] + sf * d[2])
                if vf <= 0.0:
                    if last_f != qf - 1:  # the sample before the crossing was skipped: read it
                        s1 = (qf - 1) * hf
                        pv = _tri(boned, t[0] + s1 * d[0], t[1] + s1 * d[1], t[2] + s1 * d[2])
                    gap = sf - hf + hf * pv / (pv - vf)
                    break
                pv = vf
                last_f = qf
                if vf > jump_f:  # as in the depth march
                    qf += int(math.ceil(vf / rate_f))
                else:
                    qf += 1
            out_tipgap[n] = gap
        # ---- phase 1b: inside the bone: lesion, and containment = the smallest depth over the samples with
        # tip_skip <= s <= sbone - skip (the sample nearest the middle of that range when no sample falls in it)
        for q in range(1, m):
            s = q * h
            k = t[0] - s * d[0]
            j = t[1] - s * d[1]
            i = t[2] - s * d[2]
            kc = min(max(k, 0.0), K - 1.0)  # the lesion box test on the clamped position _tri reads
            jc = min(max(j, 0.0), J - 1.0)
            ic = min(max(i, 0.0), I - 1.0)
            if (kc > lesion_box[0] and kc < lesion_box[3] and jc > lesion_box[1] and jc < lesion_box[4]
                    and ic > lesion_box[2] and ic < lesion_box[5] and _tri(lesion, k, j, i) >= 0.5):
                out_lesion[n] += h
                if s <= thread_mm:
                    out_lesion_thread[n] += h
        # the minimum is exact: the depths the march read are taken as they are; a sample it skipped is read only
        # when the Lipschitz bound ``lip`` from the last depth known, v - (q - q_v) rate, does not prove it at least
        # cont + 1e-9 (then it cannot lower the minimum)
        cont = 1e9
        lim = sbone - skip
        qv = -1
        vv = 0.0
        for q in range(0, m):
            if q * h >= tip_skip_mm - 1e-9 and q * h <= lim:
                if seen[q] == tag:
                    v = dep[q]
                elif qv >= 0 and vv - (q - qv) * rate > cont + 1e-9:
                    continue
                else:
                    s = q * h
                    v = _tri(boned, t[0] - s * d[0], t[1] - s * d[1], t[2] - s * d[2])
                qv = q
                vv = v
                if v < cont:
                    cont = v
        if cont >= 1e9:
            qm = int(round(0.5 * (tip_skip_mm + lim) / h))
            if qm < 0:
                qm = 0
            if qm > m - 1:
                qm = m - 1
            s = qm * h
            if seen[qm] == tag:
                cont = dep[qm]
            else:
                cont = _tri(boned, t[0] - s * d[0], t[1] - s * d[1], t[2] - s * d[2])
        out_cont[n] = cont - r_screw
        # gate: a candidate short of the containment margin or of the tip-to-cortex limit by more than clear_gate
        # is not measured against the structures (see ``clear_gate``)
        measure = True
        if clear_gate >= 0.0:
            short = cont_margin - out_cont[n]
            if gap_limit_mm >= 0.0 and out_tipgap[n] - gap_limit_mm > short:
                short = out_tipgap[n] - gap_limit_mm
            if short > clear_gate:
                measure = False
                out_gated[n] = 1
        reads = measure and S > 0  # the maps are read (none to read without maps; stops outside their box)
        if reads:  # the clearances at the samples inside the bone
            for q in range(1, m):
                s = q * h
                if not _tri_min(maps, K, J, I, maps_lo, t[0] - s * d[0], t[1] - s * d[1], t[2] - s * d[2], r_instr,
                                out_clear, n, soft_only, False):
                    reads = False
                    out_outside[n] = 1
                    break
            if reads and not _tri_min(maps, K, J, I, maps_lo, t[0], t[1], t[2], r_instr, out_clear, n, soft_only,
                                      False):  # the target sample
                reads = False
                out_outside[n] = 1
        # ---- phase 2: soft tissue until the skin; the body, other bone and depth read at each sample from one cell
        # computation (the values of _tri)
        if cflags.shape[0] == 0:
            cflags = np.zeros((K, J, I), np.uint8)
        sskin = -1.0
        prevb = 1.0
        prevq = m - 1  # the sample prevb is the body at (before the first sample: 1)
        q = m
        soft_start = sbone + r_instr
        while q < nmax:
            s = q * h
            k = t[0] - s * d[0]
            j = t[1] - s * d[1]
            i = t[2] - s * d[2]
            if k < -0.5 or j < -0.5 or i < -0.5 or k > K - 0.5 or j > J - 0.5 or i > I - 0.5:
                break
            k0, j0, i0, k1, j1, i1, fk, fj, fi = _cell(K, J, I, k, j, i)  # the cell _tri would use
            fl = cflags[k0, j0, i0]
            if fl == 0:
                fl = _cell_flags(body, other, boned, k0, j0, i0, k1, j1, i1)
                cflags[k0, j0, i0] = fl
            if not (fl & 2):  # else the body is >= 0.5 here: not the skin entry (read at the crossing if needed)
                b = _lerp(body, k0, j0, i0, k1, j1, i1, fk, fj, fi)
                if b < 0.5:
                    if prevq != q - 1:  # the body at the sample before was not read: read it (the same value)
                        s1 = (q - 1) * h
                        prevb = _tri(body, t[0] - s1 * d[0], t[1] - s1 * d[1], t[2] - s1 * d[2])
                    sskin = s - h + h * (prevb - 0.5) / (prevb - b) if prevb >= 0.5 else s
                    break
                prevb = b
                prevq = q
            if s > sbone + h and not (fl & 4):
                if (_lerp(other, k0, j0, i0, k1, j1, i1, fk, fj, fi) >= 0.5
                        or _lerp(boned, k0, j0, i0, k1, j1, i1, fk, fj, fi) > 0.0):
                    out_other[n] += h
            # (the maps through _tri_min's own cell computation: sharing the cell above was slower on the phantom's
            # 19 channels, the same on CThead's 8)
            if reads and not _tri_min(maps, K, J, I, maps_lo, k, j, i, r_instr, out_clear, n, soft_only,
                                      s >= soft_start):
                reads = False
                out_outside[n] = 1
            q += 1
        if sskin < 0.0:
            out_code[n] = NO_SKIN
            out_sskin[n] = q * h
            continue
        out_code[n] = OK
        out_sskin[n] = sskin


@nb.njit(cache=True, nogil=True)
def direction_major_order(cand_t, cand_d, n_dirs):
    """(N,) int64 permutation of the candidates sorted by direction, then by their original index (counting
    sort, stable, O(N))."""
    N = cand_d.shape[0]
    count = np.zeros(n_dirs + 1, np.int64)
    for n in range(N):
        count[cand_d[n] + 1] += 1
    for q in range(n_dirs):
        count[q + 1] += count[q]
    out = np.empty(N, np.int64)
    for n in range(N):
        out[count[cand_d[n]]] = n
        count[cand_d[n]] += 1
    return out


def evaluate_python(t_idx, d_idx, cand_t, cand_d, h, s_max, boned, body, other, lesion, maps, soft_only,
                    r_instr, r_screw, skip_mm, cont_margin, d_world, Minv, entry_rule,
                    tip_skip_mm=0.0, gap_max_mm=0.0, thread_mm=0.0, clear_gate=-1.0, gap_limit_mm=-1.0):
    """Straightforward per-candidate Python loop doing the same work (reference and benchmark).

    ``clear_gate`` and ``gap_limit_mm`` as in :func:`evaluate_candidates`; ``res["gated"]`` holds ``out_gated``.

    Uses :func:`scipy.ndimage.map_coordinates` (trilinear, edge-clamped) for each sample point, one
    candidate at a time. Returns a dict of arrays with the same meaning as the kernel's outputs.
    """
    from scipy.ndimage import map_coordinates

    def tri(a, p):
        p = np.clip(p, 0, np.asarray(a.shape) - 1.0)
        return float(map_coordinates(a, p.reshape(3, 1), order=1, mode="nearest", output=np.float64)[0])

    N = len(cand_t)
    S = maps.shape[3]
    maps = np.moveaxis(maps, 3, 0)
    res = {k: np.zeros(N) for k in ("sbone", "sskin", "cont", "other", "lesion", "inc", "tipgap", "lesion_thread")}
    res["code"] = np.zeros(N, np.int8)
    res["gated"] = np.zeros(N, np.uint8)
    res["clear"] = np.full((N, S), 1e9)
    shape = np.asarray(body.shape)
    for n in range(N):
        t = t_idx[cand_t[n]]
        d = d_idx[cand_d[n]]
        prev = tri(boned, t)
        if prev <= 0:
            res["code"][n] = TARGET_OUTSIDE_BONE
            res["cont"][n] = -1e9
            continue
        depths = [prev]
        sbone = None
        s = 0.0
        while s < s_max:
            s += h
            v = tri(boned, t - s * d)
            if v <= 0:
                sbone = s - h + h * prev / (prev - v)
                break
            depths.append(v)
            prev = v
        if sbone is None:
            res["code"][n] = NEVER_LEAVES_BONE
            res["cont"][n] = -1e9
            continue
        e = t - sbone * d
        g_idx = np.array([tri(boned, e + 0.5 * np.eye(3)[a]) - tri(boned, e - 0.5 * np.eye(3)[a]) for a in range(3)])
        g = Minv.T @ g_idx
        gn = np.linalg.norm(g)
        sin_inc = min(1.0, abs(g @ d_world[cand_d[n]]) / gn) if gn > 1e-9 else 1.0
        res["inc"][n] = np.degrees(np.arcsin(sin_inc))
        skip = min(15.0, max(skip_mm, (r_screw + cont_margin) / max(sin_inc, 1e-3)))
        keep = [v for q, v in enumerate(depths) if tip_skip_mm - 1e-9 <= q * h <= sbone - skip]
        if not keep:
            keep = [depths[int(np.clip(round(0.5 * (tip_skip_mm + sbone - skip) / h), 0, len(depths) - 1))]]
        res["cont"][n] = min(keep) - r_screw
        res["sbone"][n] = sbone
        if len(entry_rule):
            tw = entry_rule[ENTRY_HEAD + 3 * cand_t[n]: ENTRY_HEAD + 3 + 3 * cand_t[n]]
            e = tw - sbone * d_world[cand_d[n]] - entry_rule[0:3]
            up, antoff, latoff = e @ entry_rule[3:6], e @ entry_rule[6:9], abs(e @ entry_rule[9:12])
            if (up < entry_rule[12] or up > entry_rule[13] or antoff < entry_rule[14] or antoff > entry_rule[15]
                    or latoff > entry_rule[16] or sbone < entry_rule[17]
                    or sbone > entry_rule[18] or res["inc"][n] < entry_rule[19]):
                res["code"][n] = BAD_ENTRY
                res["cont"][n] = 1e9  # not computed for an excluded entry (as the compiled kernel)
                continue
        if gap_max_mm > 0:  # the cortex ahead of the tip (valid entries only, as the compiled kernel)
            hf, pv, gap = 0.25, depths[0], gap_max_mm + 0.25
            for qf in range(1, int(gap_max_mm / hf) + 2):
                vf = tri(boned, t + qf * hf * d)
                if vf <= 0:
                    gap = qf * hf - hf + hf * pv / (pv - vf)
                    break
                pv = vf
            res["tipgap"][n] = gap
        short = cont_margin - res["cont"][n]
        if gap_limit_mm >= 0:
            short = max(short, res["tipgap"][n] - gap_limit_mm)
        measure = not (clear_gate >= 0 and short > clear_gate)
        res["gated"][n] = 0 if measure else 1
        # the lesion and the clearances inside the bone, at the depth samples (only for a valid entry)
        for q in range(len(depths)):
            p = t - (q * h) * d
            if q > 0 and tri(lesion, p) >= 0.5:
                res["lesion"][n] += h
                if q * h <= thread_mm + 1e-9:
                    res["lesion_thread"][n] += h
            for s_ in range(S):
                if measure and not soft_only[s_]:
                    res["clear"][n, s_] = min(res["clear"][n, s_], tri(maps[s_], p) - r_instr)
        prevb, sskin = 1.0, None
        while s < s_max:
            p = t - s * d
            if np.any(p < -0.5) or np.any(p > shape - 0.5):
                break
            b = tri(body, p)
            if b < 0.5:
                sskin = s - h + h * (prevb - 0.5) / (prevb - b) if prevb >= 0.5 else s
                break
            prevb = b
            if s > sbone + h and (tri(other, p) >= 0.5 or tri(boned, p) > 0):
                res["other"][n] += h
            for s_ in range(S):
                if measure and ((not soft_only[s_]) or s >= sbone + r_instr):
                    res["clear"][n, s_] = min(res["clear"][n, s_], tri(maps[s_], p) - r_instr)
            s += h
        if sskin is None:
            res["code"][n] = NO_SKIN
            res["sskin"][n] = s
            continue
        res["sskin"][n] = sskin
    return res


def unit_directions(side_sign: float, cc_deg: np.ndarray, ml_deg: np.ndarray) -> np.ndarray:
    """Unit LPS directions (skin -> target) for craniocaudal/mediolateral angle grids.

    ``d = (side_sign * sin(ml) * cos(cc), cos(ml) * cos(cc), sin(cc))``; ``side_sign`` = +1 for a
    right-sided skin entry (the path travels towards the patient's left, +x), -1 for left.
    Returns (len(cc) * len(ml), 3).
    """
    cc, ml = np.meshgrid(np.radians(cc_deg), np.radians(ml_deg), indexing="ij")
    d = np.stack([side_sign * np.sin(ml) * np.cos(cc), np.cos(ml) * np.cos(cc), np.sin(cc)], axis=-1)
    return d.reshape(-1, 3)


def angles_of(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(craniocaudal_deg, mediolateral_deg) of unit directions (..., 3) (see osteoplan.planning.model)."""
    d = np.asarray(d, float)
    cc = np.degrees(np.arcsin(np.clip(d[..., 2], -1, 1)))
    ml = np.degrees(np.arctan2(np.abs(d[..., 0]), d[..., 1]))
    return cc, ml


_ = math  # numba uses math implicitly in some builds
