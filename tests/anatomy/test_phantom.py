"""The digital neck phantom: determinism, exact geometry, HU per tissue, nesting, file round trips."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion, distance_transform_edt, map_coordinates

from osteoplan.anatomy.phantom import HU, PhantomParams, load_phantom_dir, make_phantom, write_phantom
from osteoplan.errors import InputError


@pytest.fixture(scope="module")
def ph():
    return make_phantom()


@pytest.fixture(scope="module")
def small():
    """A short (C1-C3), coarse phantom for file round trips."""
    return make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0, fov_superior_mm=34.0, seed=3)


def _centroid(ph, name):
    return ph.volume.index_to_world(np.argwhere(ph.truth.get(name)).mean(axis=0))


def test_grid_is_axial_lps_and_isotropic(ph):
    v = ph.volume
    np.testing.assert_allclose(v.spacing_mm, [0.8, 0.8, 0.8])
    np.testing.assert_allclose(v.direction, [[0, 0, 1], [0, 1, 0], [1, 0, 0]])
    # FOV: x -60..60, y -76..68, z -126..42 -> 151 x 181 x 211 voxels (down to T1 since the anterior
    # odontoid-screw line reaches the skin at the C7 level)
    assert v.shape == (211, 181, 151)
    lo, hi = v.bounds_lps_mm()
    np.testing.assert_allclose(lo, [-60, -76, -126])
    np.testing.assert_allclose(hi, [60, 68, 42])


def test_deterministic_for_a_seed_and_noise_changes_with_seed():
    a = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0)
    b = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0)
    c = make_phantom(spacing_mm=1.0, fov_inferior_mm=-40.0, seed=1)
    assert np.array_equal(a.volume.array, b.volume.array)
    assert not np.array_equal(a.volume.array, c.volume.array)
    for n in a.truth.names():  # the anatomy does not depend on the seed
        assert np.array_equal(a.truth.get(n), c.truth.get(n)), n
    # the difference is pure noise: std of (a - c) = sqrt(2) * 12 HU
    assert np.std(a.volume.array - c.volume.array) == pytest.approx(math.sqrt(2) * 12.0, rel=0.02)


def test_all_structures_present_and_non_empty(ph):
    expected = {"body", "bone", "vertebrae_C1", "vertebrae_C2", "vertebrae_C3", "vertebrae_C7", "vertebrae_T1", "lesion",
                "vertebral_artery_canal_left", "vertebral_artery_canal_right", "spinal_canal",
                "spinal_cord", "vertebral_artery_left", "vertebral_artery_right", "common_carotid_artery_left",
                "common_carotid_artery_right", "internal_carotid_artery_left", "internal_carotid_artery_right",
                "internal_jugular_vein_left", "internal_jugular_vein_right", "pharynx", "trachea", "larynx",
                "airway", "esophagus", "mandible"}
    assert expected <= set(ph.truth.names())
    for n in expected:
        assert ph.truth.get(n).any(), n
        assert ph.truth.sources[n] == "phantom-truth"


@pytest.mark.parametrize("radius", [3.0, 4.0])
def test_lesion_volume_is_the_sphere_volume(radius):
    p = make_phantom(lesion_radius_mm=radius, fov_inferior_mm=-40.0, noise_hu=0)
    exact_ml = 4.0 / 3.0 * math.pi * radius**3 / 1000.0  # 0.1131 and 0.2681 mL
    assert p.truth.volume_ml("lesion") == pytest.approx(exact_ml, rel=0.05)
    # centred on the dens centre (midpoint of the dens axis)
    np.testing.assert_allclose(_centroid(p, "lesion"), p.dens_centre_lps_mm, atol=0.2)


def test_lesion_offset_and_zero_radius():
    p = make_phantom(lesion_radius_mm=3.0, lesion_offset_mm=(1.0, 0.0, -2.0), fov_inferior_mm=-40.0)
    np.testing.assert_allclose(_centroid(p, "lesion"), p.dens_centre_lps_mm + [1.0, 0.0, -2.0], atol=0.25)
    q = make_phantom(lesion_radius_mm=0.0, fov_inferior_mm=-40.0)
    assert q.truth.has("lesion") and not q.truth.get("lesion").any()  # segmented, absent


def test_large_lesion_is_clipped_to_c2_and_breaches_the_cortex():
    p = make_phantom(lesion_radius_mm=7.0, fov_inferior_mm=-40.0, noise_hu=0)
    les, c2 = p.truth.get("lesion"), p.truth.get("vertebrae_C2")
    assert not (les & ~c2).any()
    assert p.truth.volume_ml("lesion") < 4 / 3 * math.pi * 7.0**3 / 1000  # clipped
    # breach: lesion voxels touch the outside of C2
    assert (binary_dilation(les) & ~c2 & ~p.truth.get("bone")).any()


def test_landmarks_match_the_geometry_and_the_published_priors(ph):
    lm = ph.landmarks
    # anteroinferior body to dens tip: 37.6 +/- 3.3 mm (Eur Spine J 2009;18:271)
    assert 30.0 <= lm.anteroinferior_to_apex_mm <= 45.0
    # by hand, in the C2 frame: corner = 45-degree point of the lip ellipse (centre (-6.5, -11), semi-axes 3, 2.5)
    # sheared by tan(10 deg): (y, z) = (-8.805, -14.153); apex = (1, 2.5) + 21 (sin 10, cos 10) = (4.647, 23.181)
    assert lm.anteroinferior_to_apex_mm == pytest.approx(math.hypot(4.647 + 8.805, 23.181 + 14.153), abs=0.01)
    # corner -> apex line: 62.4 +/- 4.7 deg to the C2 base (Tun 2009) and 5-15 deg off the dens axis
    d = (lm.apex_lps_mm - lm.anteroinferior_body_lps_mm) / lm.anteroinferior_to_apex_mm
    lordosis = math.radians(ph.params.lordosis_deg)
    slope = math.radians(10.0) - lordosis  # the base rises posteriorly by 10 deg in the C2 frame, then extends
    base = np.array([0.0, math.cos(slope), math.sin(slope)])
    assert abs(math.degrees(math.acos(d @ base)) - 62.4) < 4.7
    assert 5.0 <= math.degrees(math.acos(d @ lm.axis_unit)) <= 15.0
    assert lm.waist_diameter_mm == pytest.approx(9.6)
    # inner diameter = outer - 2 x cortex = 7.2 mm, within 6.5 +/- 1.9 mm
    assert abs(lm.waist_diameter_mm - 2 * ph.params.cortex_mm - 6.5) < 1.9
    # dens axis tilted 10 degrees posteriorly (+P) from the C2 body, which the 10-degree lordosis extends
    tilt = math.radians(ph.params.dens_tilt_deg) + lordosis
    np.testing.assert_allclose(lm.axis_unit, [0, math.sin(tilt), math.cos(tilt)], atol=1e-12)
    np.testing.assert_allclose(lm.body_centre_lps_mm, [0.0, 0.0, -4.0])
    assert lm.method == "phantom-truth" and lm.confidence == 1.0


def _dens_sections(ph):
    """Radius of C2 bone around the dens axis in 0.8 mm thick sections, by distance t from the base."""
    lm = ph.landmarks
    base = lm.apex_lps_mm - 21.0 * lm.axis_unit
    idx = np.argwhere(ph.truth.get("vertebrae_C2"))
    w = ph.volume.index_to_world(idx) - base
    t = w @ lm.axis_unit
    rho = np.linalg.norm(w - t[:, None] * lm.axis_unit, axis=1)
    return t, rho


def test_mask_agrees_with_landmarks(ph):
    lm = ph.landmarks
    t, rho = _dens_sections(ph)
    near_axis = rho < 8.0
    # apex: the highest C2 voxel along the axis is within one voxel of the landmark
    assert t[near_axis].max() == pytest.approx(21.0, abs=0.8)
    # waist: max radial extent at the waist section (t = 6.5) ~ 4.5 mm, and it is the narrowest
    # section between the base flare (t = 4) and the head (t = 14)
    def radius_at(tc):
        sel = near_axis & (np.abs(t - tc) < 0.4)
        return rho[sel].max()
    r_waist = radius_at(6.5)
    assert r_waist == pytest.approx(lm.waist_diameter_mm / 2, abs=0.6)
    assert all(radius_at(tc) >= r_waist - 0.05 for tc in np.arange(4.5, 14.0, 0.5))
    # anteroinferior point: on the C2 surface (within a voxel of a C2 voxel and of a non-C2 voxel)
    k = np.rint(ph.volume.world_to_index(lm.anteroinferior_body_lps_mm)).astype(int)
    c2 = ph.truth.get("vertebrae_C2")
    box = c2[k[0] - 1:k[0] + 2, k[1] - 1:k[1] + 2, k[2] - 1:k[2] + 2]
    assert box.any() and not box.all()
    # body centre inside the C2 body
    kc = np.rint(ph.volume.world_to_index(lm.body_centre_lps_mm)).astype(int)
    assert c2[tuple(kc)]


def test_masks_nested_and_exclusive(ph):
    t = ph.truth
    assert not (t.get("spinal_cord") & ~t.get("spinal_canal")).any()
    assert not (t.get("lesion") & ~t.get("vertebrae_C2")).any()
    assert not (t.get("lesion") & t.get("bone")).any()
    assert np.array_equal(t.get("airway"), t.get("pharynx") | t.get("larynx") | t.get("trachea"))
    everything = t.union(t.names())
    assert not (everything & ~t.get("body")).any()
    vessels = [n for n in t.names() if "artery" in n or "vein" in n]
    for v in vessels:
        assert not (t.get(v) & t.get("bone")).any(), v
        assert not (t.get(v) & t.get("airway")).any(), v
    verts = [n for n in t.names() if n.startswith("vertebrae_")]
    total = sum(t.get(n).sum(dtype=int) for n in verts)
    assert total == t.union(verts).sum()  # vertebrae do not overlap
    assert np.array_equal(t.union(verts + ["mandible"]) & ~t.get("lesion"), t.get("bone"))


def test_anatomical_positions_and_orientation(ph):
    c = {n: _centroid(ph, n) for n in ("vertebrae_C1", "vertebrae_C2", "vertebrae_C3", "pharynx", "mandible",
                                        "spinal_cord", "common_carotid_artery_left", "common_carotid_artery_right",
                                        "internal_jugular_vein_left", "vertebral_artery_left", "larynx", "esophagus")}
    assert c["vertebrae_C1"][2] > c["vertebrae_C2"][2] > c["vertebrae_C3"][2]      # superior = +z
    assert c["pharynx"][1] < ph.landmarks.anteroinferior_body_lps_mm[1]           # pharynx anterior (-y) of C2
    assert c["spinal_cord"][1] > ph.landmarks.body_centre_lps_mm[1] + 10          # cord posterior
    assert c["mandible"][1] < -25 and c["mandible"][2] > 10                       # mandible anterior, superior
    assert c["common_carotid_artery_left"][0] > 15 and c["common_carotid_artery_right"][0] < -15  # +x = left
    assert 15 <= c["common_carotid_artery_left"][0] <= 25
    assert c["internal_jugular_vein_left"][0] > c["common_carotid_artery_left"][0]  # IJV lateral
    assert c["larynx"][1] < c["esophagus"][1]                                     # larynx anterior
    # foramina of C3-C6 13.3-14.8 mm from the midline (2 mm lateral of the bodies, Ebraheim 1997), C2 22, C1 27
    assert 14 <= c["vertebral_artery_left"][0] <= 22


def test_vertebral_artery_canal_is_the_foramina_and_the_tube_between(ph):
    """vertebral_artery_canal_*: no bone, holds its artery from C6 to C1, is a hole enclosed by bone at
    each of C1-C6 (transverse foramen), and left is +x."""
    from scipy.ndimage import binary_fill_holes

    t, v = ph.truth, ph.volume
    for side, sx in (("left", 1.0), ("right", -1.0)):
        canal, va = t.get(f"vertebral_artery_canal_{side}"), t.get(f"vertebral_artery_{side}")
        assert not (canal & t.get("bone")).any()
        assert np.sign(_centroid(ph, f"vertebral_artery_canal_{side}")[0]) == sx
        ks = np.nonzero(canal.any(axis=(1, 2)))[0]
        inside = va[ks.min():ks.max() + 1]
        assert (inside & canal[ks.min():ks.max() + 1]).sum() / inside.sum() > 0.97  # the artery runs in its canal
        for n in range(1, 7):
            vert = t.get(f"vertebrae_C{n}")
            enclosed = 0
            for k in np.nonzero(vert.any(axis=(1, 2)))[0]:
                half = vert[k][:, :] & ((v.index_to_world(np.c_[np.zeros(vert.shape[2]), np.zeros(vert.shape[2]),
                                                                  np.arange(vert.shape[2])])[:, 0] * sx) > 5)[None, :]
                hole = binary_fill_holes(half) & ~half & canal[k]
                enclosed += int(hole.sum())
            assert enclosed * 0.8**3 > 10.0, f"no transverse foramen of C{n} on the {side}"


def test_hu_statistics_per_tissue(ph):
    t, a = ph.truth, ph.volume.array

    def core(mask, it=2):
        return a[binary_erosion(mask, iterations=it)]

    c2_core = binary_erosion(t.get("vertebrae_C2"), iterations=3) & ~binary_dilation(t.get("lesion"), iterations=3)
    assert np.mean(a[c2_core]) == pytest.approx(HU["cancellous"], abs=15)
    assert np.mean(core(t.get("lesion"))) == pytest.approx(HU["lesion"], abs=10)
    assert np.mean(core(t.get("spinal_cord"))) == pytest.approx(HU["cord"], abs=3)
    assert np.mean(core(t.get("airway"))) == pytest.approx(-1000, abs=10)
    assert np.mean(core(t.get("common_carotid_artery_left"))) == pytest.approx(320, abs=15)
    assert np.mean(core(t.get("internal_jugular_vein_right"))) == pytest.approx(200, abs=10)
    # cortex: the C2 shell is bright (the blur smears a 1.2 mm shell, so the peak is lower than 1200)
    c2 = t.get("vertebrae_C2") & ~t.get("lesion")
    shell = c2 & ~binary_erosion(c2, iterations=1)
    assert np.percentile(a[shell], 90) > 800
    # noise: std of a flat region (posterior neck muscle) equals noise_hu
    k, j, i = np.rint(ph.volume.world_to_index([0.0, 52.0, -60.0])).astype(int)
    patch = a[k - 5:k + 5, j - 3:j + 3, i - 5:i + 5]
    assert np.mean(patch) == pytest.approx(HU["muscle"], abs=3)
    assert np.std(patch) == pytest.approx(12.0, rel=0.15)


def test_contrast_off_and_vessel_shifts():
    p = make_phantom(contrast=False, fov_inferior_mm=-40.0, carotid_shift_mm=(0.0, 5.0, 0.0),
                     carotid_shift_side="left", noise_hu=0)
    q = make_phantom(fov_inferior_mm=-40.0, noise_hu=0)
    a = p.volume.array
    assert np.mean(a[binary_erosion(p.truth.get("internal_carotid_artery_left"), iterations=1)]) == pytest.approx(40, abs=5)
    assert p.volume.info.contrast is False and q.volume.info.contrast is True
    d_left = _centroid(p, "internal_jugular_vein_left") - _centroid(q, "internal_jugular_vein_left")
    d_right = _centroid(p, "internal_jugular_vein_right") - _centroid(q, "internal_jugular_vein_right")
    np.testing.assert_allclose(d_left, [0, 5, 0], atol=0.3)
    np.testing.assert_allclose(d_right, [0, 0, 0], atol=1e-9)
    # straight spine: along the lordotic canal the clipping to the bony canal shifts the centroid in z too
    r = make_phantom(fov_inferior_mm=-40.0, cord_shift_mm=(1.0, 0.0, 0.0), noise_hu=0, lordosis_deg=0.0)
    q0 = make_phantom(fov_inferior_mm=-40.0, noise_hu=0, lordosis_deg=0.0)
    np.testing.assert_allclose(_centroid(r, "spinal_cord") - _centroid(q0, "spinal_cord"), [1, 0, 0], atol=0.15)


def test_params_validation_and_overrides():
    with pytest.raises(InputError):
        make_phantom(spacing_mm=5.0)
    with pytest.raises(InputError):
        make_phantom(not_a_param=1)
    with pytest.raises(InputError):
        PhantomParams(carotid_shift_side="middle")
    p = PhantomParams(seed=4, lesion_offset_mm=[1, 2, 3])
    assert PhantomParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_write_and_read_back(small, tmp_path):
    out = tmp_path / "ph"
    paths = write_phantom(small, out)
    assert paths["ct"].exists() and paths["dicom"].is_dir()
    assert set(paths["labels"]) == set(small.truth.names())
    back = load_phantom_dir(out)
    np.testing.assert_allclose(back.volume.affine, small.volume.affine, atol=1e-5)
    assert np.array_equal(back.volume.array, small.volume.array)  # integer HU survive exactly
    for n in small.truth.names():
        assert np.array_equal(back.truth.get(n), small.truth.get(n)), n
    np.testing.assert_allclose(back.landmarks.apex_lps_mm, small.landmarks.apex_lps_mm, atol=1e-4)
    assert back.params == small.params
    # multilabel + table
    import nibabel as nib
    from osteoplan.imaging import Volume
    table = {int(k): v for k, v in json.loads(paths["label_table"].read_text()).items()}
    ml = Volume.from_nifti(nib.load(str(paths["multilabel"]))).array
    inv = {v: k for k, v in table.items()}
    assert np.array_equal(ml == inv["spinal_cord"], small.truth.get("spinal_cord"))
    assert np.array_equal(ml == inv["lesion"], small.truth.get("lesion"))
    # existing folder is refused
    with pytest.raises(InputError):
        write_phantom(small, out)
    write_phantom(small, out, overwrite=True, dicom=False)
    assert not (out / "dicom").exists()


def test_dicom_series_reads_back_with_exact_geometry(small, tmp_path):
    import pydicom
    import SimpleITK as sitk

    from osteoplan.imaging import Volume, read_volume

    paths = write_phantom(small, tmp_path / "ph")
    files = sorted(paths["dicom"].glob("*.dcm"))
    assert len(files) == small.volume.shape[0]
    ds = pydicom.dcmread(files[0])
    assert ds.Modality == "CT" and ds.PatientName == "PHANTOM^DEMO"
    assert [float(x) for x in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    np.testing.assert_allclose([float(x) for x in ds.ImagePositionPatient], small.volume.origin_mm)
    for vol in (read_volume(paths["dicom"]),
                Volume.from_sitk(sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(paths["dicom"]))))):
        np.testing.assert_allclose(vol.affine, small.volume.affine, atol=1e-4)
        assert np.array_equal(vol.array, small.volume.array)


SCREW_R_MM = 1.75      # 3.5 mm cannulated screw
BONE_MARGIN_MM = 0.5   # bone kept around the screw inside C2
VISCERA = ("pharynx", "larynx", "trachea", "esophagus", "airway")


def _outside_mm(mask, s):
    """Distance (mm) from each voxel to *mask*, conservative by half a voxel (surface, not voxel centre)."""
    return distance_transform_edt(~mask, sampling=s) - 0.5 * s


def _anterior_screw_lines(ph, max_axis_deg=25.0, step=0.25):
    """Brute force over entry points x tips: the straight anterior odontoid-screw lines that are feasible.

    Entry points: C2 surface voxels (a 6-neighbour outside C2) within 8 mm of the midline, at most
    10 mm above the anteroinferior corner, in the front 6 mm of the body (y <= corner + 6 mm) and
    facing forwards (outward normal of the smoothed mask with y < -0.1): the anterior cortex and the
    anteroinferior rim. Tips: 2.5 or 3 mm below the apex along the dens axis, 0-1.5 mm in front of it
    (anterior half) and up to 1 mm to either side. A line is kept when it is within *max_axis_deg*
    of the dens axis, stays >= 1.75 + 0.5 mm inside C2 from 4 mm after the entry to the tip, reaches
    the skin (first point outside ``body``) inside the field of view going down from the entry, and
    on the whole way tip -> skin stays > 1.75 mm from the viscera, > 0.5 mm from any other bone
    (it does not cross C1, C3.., the mandible) and >= 3 mm from the vertebral-artery canals and the
    spinal canal. Distances: Euclidean distance transforms of the truth masks, trilinear, minus
    half a voxel. Plain numpy/scipy, independent of the planner.
    """
    from scipy.ndimage import gaussian_filter

    t, v = ph.truth, ph.volume
    s = float(v.spacing_mm[0])
    lm = ph.landmarks
    c2 = t.get("vertebrae_C2")
    depth = distance_transform_edt(c2, sampling=s) - 0.5 * s
    d = {"viscera": _outside_mm(t.union(VISCERA), s), "other_bone": _outside_mm(t.get("bone") & ~c2, s),
         "va_canal": _outside_mm(t.union(["vertebral_artery_canal_left", "vertebral_artery_canal_right"]), s),
         "spinal_canal": _outside_mm(t.get("spinal_canal"), s)}
    body = t.get("body").astype(np.float32)
    axis, apex, ai = lm.axis_unit, lm.apex_lps_mm, lm.anteroinferior_body_lps_mm
    interior = binary_erosion(c2, structure=np.array([[[0, 0, 0], [0, 1, 0], [0, 0, 0]], [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                                                      [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], bool))
    idx = np.argwhere(c2 & ~interior)
    w = v.index_to_world(idx)
    g = np.gradient(gaussian_filter(c2.astype(np.float32), 1.0))
    ny = -g[1][tuple(idx.T)] / (np.sqrt(sum(gi[tuple(idx.T)] ** 2 for gi in g)) + 1e-9)  # outward normal, y
    keep = (np.abs(w[:, 0]) <= 8.0) & (w[:, 2] <= ai[2] + 10.0) & (w[:, 1] <= ai[1] + 6.0) & (ny < -0.1)
    entries = w[keep]
    e_ant = np.array([0.0, -axis[2], axis[1]]) / math.hypot(axis[1], axis[2])
    e_lat = np.cross(axis, e_ant)
    tips = [apex - u * axis + a * e_ant + l * e_lat for u in (2.5, 3.0) for a in (0.0, 0.5, 1.0, 1.5)
            for l in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    lo, hi = v.bounds_lps_mm()
    found = []
    for tip in tips:
        vec = tip - entries
        length = np.linalg.norm(vec, axis=1)
        unit = vec / length[:, None]
        ang = np.degrees(np.arccos(np.clip(unit @ axis, -1.0, 1.0)))
        for k in np.nonzero(ang <= max_axis_deg)[0]:
            e, u, L = entries[k], unit[k], length[k]
            inner = e + np.arange(4.0, L + 1e-6, step)[:, None] * u
            if map_coordinates(depth, v.world_to_index(inner).T, order=1).min() < SCREW_R_MM + BONE_MARGIN_MM:
                continue
            ext = tip - np.arange(0.0, 250.0, step)[:, None] * u
            in_fov = np.all((ext >= lo) & (ext <= hi), axis=1)
            ext = ext[: np.argmin(in_fov)] if not in_fov.all() else ext
            out_body = map_coordinates(body, v.world_to_index(ext).T, order=0) < 0.5
            skin = np.nonzero(out_body & (np.arange(len(ext)) * step > L))[0]
            if skin.size == 0:
                continue  # the line leaves the CT before the skin
            path = v.world_to_index(ext[: skin[0] + 1]).T
            f = {n: float(map_coordinates(dm, path, order=1).min()) for n, dm in d.items()}
            if f["viscera"] > SCREW_R_MM and f["other_bone"] > 0.5 and f["va_canal"] >= 3.0 and f["spinal_canal"] >= 3.0:
                found.append({"entry": e, "tip": tip, "skin": ext[skin[0]], "angle_deg": float(ang[k]),
                              "entry_to_apex_mm": float(np.linalg.norm(apex - e)), **f})
    return found


@pytest.mark.slow
def test_an_anterior_odontoid_screw_line_exists(ph):
    """Existence proof (brute force, independent of the planner): a straight line from the anterior C2
    cortex near the anteroinferior corner, within 25 deg of the dens axis, to the apex region, inside C2
    with screw + margin, reaching the skin of the low anterolateral neck between the visceral column and
    the carotid sheath without entering a viscus, crossing other bone or nearing the canals."""
    lines = _anterior_screw_lines(ph)
    assert lines, "no feasible anterior odontoid-screw line on the default phantom"
    t, v = ph.truth, ph.volume
    # the skin entry is inside the CT with >= 15 mm to spare (the lowest slice is at z = -126 mm)
    in_view = [r for r in lines if r["skin"][2] > v.bounds_lps_mm()[0][2] + 15.0]
    assert in_view
    best = max(in_view, key=lambda r: r["viscera"])
    seg = v.world_to_index(best["tip"] + np.linspace(0, 1, 400)[:, None] * (best["skin"] - best["tip"])).T
    carotid = float(map_coordinates(_outside_mm(t.union([n for n in t.names() if "carotid" in n]), 0.8), seg, order=1).min())
    # the corridor is the one hydrodissection opens: near (a few mm) but clear of the carotid
    assert 1.75 < carotid < 10.0
    # the skin entry is on the low anterolateral neck (below C5)
    sk = best["skin"]
    assert abs(sk[0]) > 12.0 and sk[1] < -30.0 and sk[2] < _centroid(ph, "vertebrae_C5")[2]
    # both sides are open (the anatomy is mirror-symmetric but for the oesophagus, slightly left)
    assert {np.sign(r["skin"][0]) for r in lines} == {-1.0, 1.0}


def test_reference_anterior_path_is_feasible(ph):
    """The documented anterior odontoid-screw line (left) passes the same checks, and crosses the lesion."""
    from osteoplan.anatomy.phantom import reference_trajectory

    tr = reference_trajectory(ph)
    t, v = ph.truth, ph.volume
    s = 0.8
    lm = ph.landmarks
    u = (tr["target"] - tr["bone_entry"]) / np.linalg.norm(tr["target"] - tr["bone_entry"])
    assert math.degrees(math.acos(u @ lm.axis_unit)) <= 25.0
    assert np.dot(tr["target"] - lm.apex_lps_mm, -lm.axis_unit) <= 3.0                  # tip <= 3 mm below the apex
    outer = tr["skin_entry"] + np.linspace(0, 1, 500)[:, None] * (tr["target"] - tr["skin_entry"])
    ijk = v.world_to_index(outer).T

    def clearance(names):
        return float(map_coordinates(_outside_mm(t.union(names), s), ijk, order=1).min())

    assert clearance(list(VISCERA)) > SCREW_R_MM
    assert clearance(["spinal_canal"]) >= 3.0
    assert clearance(["vertebral_artery_canal_left", "vertebral_artery_canal_right"]) >= 3.0
    assert clearance(["vertebrae_C1", "vertebrae_C3", "vertebrae_C4", "mandible"]) > 0.5
    assert v.contains(tr["skin_entry"]) and tr["skin_entry"][0] > 12.0                      # left anterolateral neck
    k = np.rint(v.world_to_index(tr["skin_entry"] + 1.0 * (tr["skin_entry"] - tr["target"])
                                 / np.linalg.norm(tr["skin_entry"] - tr["target"]))).astype(int)
    assert not t.get("body")[tuple(k)]                                                     # on the skin
    inner = tr["bone_entry"] + np.arange(4.0, np.linalg.norm(tr["target"] - tr["bone_entry"]), 0.25)[:, None] * u
    depth = distance_transform_edt(t.get("vertebrae_C2"), sampling=s) - 0.5 * s
    assert map_coordinates(depth, v.world_to_index(inner).T, order=1).min() >= SCREW_R_MM + BONE_MARGIN_MM
    # with the default dens lesion the screw's path through the dens crosses the lesion
    assert map_coordinates(t.get("lesion").astype(np.float32), v.world_to_index(inner).T, order=0).max() > 0


def test_dicom_passes_dciodvfy(small, tmp_path):
    import shutil
    import subprocess

    from osteoplan.anatomy.phantom import write_dicom_series

    if shutil.which("dciodvfy") is None:
        pytest.skip("dicom3tools (dciodvfy) is not installed")
    files = write_dicom_series(small.volume, tmp_path / "d", small.params)
    res = subprocess.run(["dciodvfy", str(files[len(files) // 2])], capture_output=True, text=True)
    errors = [line for line in (res.stdout + res.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_cli_phantom(tmp_path, capsys):
    from osteoplan.cli import main

    out = tmp_path / "ph"
    assert main(["phantom", str(out), "--spacing-mm", "1.5", "--no-dicom", "--lesion-radius-mm", "5", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "ct.nii.gz" in printed and "lesion" in printed
    back = load_phantom_dir(out)
    assert back.params.lesion_radius_mm == 5.0 and back.params.seed == 2 and back.params.spacing_mm == 1.5
    assert back.truth.volume_ml("lesion") == pytest.approx(4 / 3 * math.pi * 125 / 1000, rel=0.12)
    assert main(["phantom", str(out)]) == 2  # exists: refused, one-line error
    assert "exists" in capsys.readouterr().err
    assert main(["phantom", str(out), "--force", "--no-contrast", "--spacing-mm", "1.5", "--no-dicom"]) == 0
    assert load_phantom_dir(out).params.contrast is False


def test_rotated_anatomy_keeps_truth_and_landmarks_consistent():
    base = make_phantom(fov_inferior_mm=-40.0, spacing_mm=1.0, noise_hu=0)
    rot = make_phantom(fov_inferior_mm=-40.0, spacing_mm=1.0, noise_hu=0, rotation_deg=(10.0, 0.0, 15.0))
    # rigid rotation: volumes preserved (nearest-neighbour sampling: within 2 %)
    for n in ("vertebrae_C2", "lesion", "vertebrae_C1"):  # structures that stay inside the FOV
        assert rot.truth.volume_ml(n) == pytest.approx(base.truth.volume_ml(n), rel=0.02), n
    # the lesion centroid follows the rotated lesion centre
    np.testing.assert_allclose(_centroid(rot, "lesion"), rot.lesion_centre_lps_mm, atol=0.3)
    # +z rotation turns the face to the patient's left (+x): mandible centroid x = 40 sin(15 deg) ~ +10 mm
    assert _centroid(rot, "mandible")[0] > 5.0 > abs(_centroid(base, "mandible")[0])
    # landmark distances are invariant, the axis is rotated
    assert rot.landmarks.anteroinferior_to_apex_mm == pytest.approx(base.landmarks.anteroinferior_to_apex_mm)
    assert abs(rot.landmarks.axis_unit @ base.landmarks.axis_unit - math.cos(math.radians(10))) < 0.06
    k = np.rint(rot.volume.world_to_index(rot.landmarks.apex_lps_mm - 1.0 * rot.landmarks.axis_unit)).astype(int)
    assert rot.truth.get("vertebrae_C2")[tuple(k)]
    # nesting survives the rotation exactly (one nearest-neighbour map for all masks)
    assert not (rot.truth.get("spinal_cord") & ~rot.truth.get("spinal_canal")).any()
    assert not (rot.truth.get("lesion") & ~rot.truth.get("vertebrae_C2")).any()


def test_cli_phantom_is_byte_identical_for_a_seed_and_only_the_noise_changes_with_it(tmp_path, capsys):
    """Two `osteoplan phantom` runs with one seed write identical files (NIfTI, DICOM, truth, landmarks);
    another seed changes the CT (noise) only; the DICOM series reads back to the NIfTI voxels."""
    import hashlib

    import nibabel as nib

    from osteoplan.cli import main
    from osteoplan.imaging import read_volume

    def digests(d):
        return {str(f.relative_to(d)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(d.rglob("*"))
                if f.is_file()}

    args = ["--spacing-mm", "1.5", "--lesion-radius-mm", "3"]
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        assert main(["phantom", str(tmp_path / name), "--seed", seed, *args]) == 0
    a, b, c = (digests(tmp_path / n) for n in "abc")
    assert a == b
    assert {"ct.nii.gz", "labels.nii.gz", "labels.json", "landmarks.json", "phantom.json"} <= set(a)
    assert sum(k.startswith("dicom/") for k in a) == read_volume(tmp_path / "a" / "ct.nii.gz").shape[0]
    changed = {k for k in a if a[k] != c[k]}
    assert "ct.nii.gz" in changed and "phantom.json" in changed  # the seed is recorded
    assert not any(k.startswith("labels") or k == "landmarks.json" for k in changed)  # truth is seed-free
    ct_a = read_volume(tmp_path / "a" / "ct.nii.gz")
    ct_c = read_volume(tmp_path / "c" / "ct.nii.gz")
    assert not np.array_equal(ct_a.array, ct_c.array)
    # the DICOM series and the NIfTI hold the same voxels and geometry
    dcm = read_volume(tmp_path / "a" / "dicom")
    assert np.array_equal(dcm.array, ct_a.array)
    np.testing.assert_allclose(dcm.affine, ct_a.affine, atol=1e-4)
    # the truth lesion is the 3 mm sphere (113.1 mm^3) within voxelisation at 1.5 mm
    table = {int(k): v for k, v in json.loads((tmp_path / "a" / "labels.json").read_text()).items()}
    ml = np.asanyarray(nib.load(str(tmp_path / "a" / "labels.nii.gz")).dataobj)
    inv = {v: k for k, v in table.items()}
    assert (ml == inv["lesion"]).sum() * 1.5**3 == pytest.approx(4 / 3 * math.pi * 27, rel=0.2)


def test_cli_phantom_contrast_switch_and_bad_values(tmp_path, capsys):
    from osteoplan.cli import main

    assert main(["phantom", str(tmp_path / "on"), "--spacing-mm", "1.5", "--no-dicom", "--noise-hu", "0"]) == 0
    assert main(["phantom", str(tmp_path / "off"), "--spacing-mm", "1.5", "--no-dicom", "--noise-hu", "0",
                 "--no-contrast"]) == 0
    on, off = load_phantom_dir(tmp_path / "on"), load_phantom_dir(tmp_path / "off")
    cca = binary_erosion(on.truth.get("common_carotid_artery_left"), iterations=1)
    assert np.mean(on.volume.array[cca]) == pytest.approx(320, abs=15)   # enhanced artery
    assert np.mean(off.volume.array[cca]) == pytest.approx(40, abs=5)    # unenhanced blood
    assert on.volume.info.contrast is True and off.volume.info.contrast is False
    capsys.readouterr()
    for bad in (["--seed", "-1"], ["--lesion-radius-mm", "-2"], ["--lesion-radius-mm", "nan"],
                ["--spacing-mm", "0.1"], ["--lesion-offset-mm", "0", "0", "100"]):
        with pytest.raises(SystemExit) if "nan" in bad else contextlib.nullcontext():  # nan: argparse usage error
            rc = main(["phantom", str(tmp_path / "bad"), *bad])
            assert rc == 2
        assert not (tmp_path / "bad").exists()
    err = capsys.readouterr().err
    assert "seed" in err and "Lesion radius" in err and "Traceback" not in err
