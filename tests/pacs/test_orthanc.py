"""The PACS link against a real Orthanc 1.10 + DICOMweb plugin (started by ./scripts/test): search, retrieve,
store of SEG / SR / Encapsulated PDF found again by QIDO, and every failure as one clear line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from osteoplan.errors import PacsError, PacsStoreError, PacsUnreachableError, PatientIdentityError
from osteoplan.imaging.identity import PatientIdentity, check_ct_matches_case
from osteoplan.imaging.io import read_volume
from osteoplan.imaging.synth import FAKE_PHI, write_series
from osteoplan.pacs import PacsClient, PacsConfig
from osteoplan.planning.provenance import ct_source_of, volume_sha256

pytestmark = pytest.mark.pacs


def _series(tmp_path: Path, **kw):
    """A 12-slice CT series (analytic HU field, FAKE_PHI identity) with fresh UIDs, as files and datasets."""
    s = write_series(tmp_path / "ct", study_uid=generate_uid(), series_uid=generate_uid(), for_uid=generate_uid(),
                     seed=int(np.random.default_rng().integers(1 << 30)), **kw)
    return s, [pydicom.dcmread(p) for p in s.files]


def test_ct_round_trip_equals_the_files_and_keeps_uids_and_identity(pacs, tmp_path):
    """A series stored then read back over WADO-RS is the same volume (voxels, affine, hash) with its UIDs."""
    s, dsets = _series(tmp_path)
    report = pacs.store(dsets)
    assert report.complete and len(report.stored) == 12
    local = read_volume(s.folder)
    got = pacs.read_series(s.study_uid, s.series_uid)
    assert got.n_instances == 12
    np.testing.assert_array_equal(got.volume.array, local.array)
    np.testing.assert_allclose(got.volume.affine, local.affine, atol=1e-9)
    assert volume_sha256(got.volume) == volume_sha256(local)
    src = ct_source_of(got.volume)
    assert (src.study_uid, src.series_uid) == (s.study_uid, s.series_uid)
    assert src.frame_of_reference_uid == str(dsets[0].FrameOfReferenceUID)
    # the identity read from the retrieved files is the series' own (fictitious) one
    case = PatientIdentity(patient_id=FAKE_PHI["PatientID"], family_name="Synthpatient", given_name="Zéphyrine",
                           birth_date="1961-07-23", sex="female")
    res = check_ct_matches_case(got.identity, case)
    assert res.verified and set(res.compared) == {"PatientID", "PatientName", "PatientBirthDate", "PatientSex"}


def test_wrong_patient_ct_from_the_pacs_is_refused_naming_attributes_not_values(pacs, tmp_path, caplog):
    """The PACS's CT of patient SYN-778899 attached to another patient's case: refused, attributes named only."""
    s, dsets = _series(tmp_path)
    pacs.store(dsets)
    hit = [h for h in pacs.find_series(study_uid=s.study_uid)][0]
    other = PatientIdentity(patient_id="OTHER-1234", family_name="Martin", given_name="Alice", birth_date="1950-01-02",
                            sex="female")
    with caplog.at_level(logging.DEBUG), pytest.raises(PatientIdentityError) as exc:
        check_ct_matches_case(hit.identity, other)
    msg = str(exc.value)
    assert "PatientID" in msg and "PatientName" in msg and "PatientBirthDate" in msg
    assert "PatientSex agree" in msg or "(PatientSex agree)" in msg
    for value in (FAKE_PHI["PatientID"], "SYNTHPATIENT", "ZEPHYRINE", "19610723", "OTHER-1234", "Martin", "1950"):
        assert value.lower() not in msg.lower()
        assert value.lower() not in caplog.text.lower()
    # the same refusal when retrieving for the case: before any pixel is decoded, nothing returned
    with pytest.raises(PatientIdentityError, match="another patient"):
        pacs.read_series(s.study_uid, s.series_uid, case=other)
    same = PatientIdentity(patient_id=FAKE_PHI["PatientID"], birth_date="19610723")
    got = pacs.read_series(s.study_uid, s.series_uid, case=same)
    assert got.identity_check.verified and got.identity_check.compared == ("PatientID", "PatientBirthDate")
    # into a planning job's folder: refused for the other case (nothing left), written for the right one
    job = tmp_path / "job" / "ct"
    with pytest.raises(PatientIdentityError):
        pacs.retrieve_for_case(s.study_uid, s.series_uid, job, other)
    assert not job.exists()
    opts = pacs.retrieve_for_case(s.study_uid, s.series_uid, job, same)
    assert opts == {"ct": "ct", "format": "dicom", "source": "pacs", "ct_files": 12, "study_uid": s.study_uid,
                    "series_uid": s.series_uid, "identity_verified_on": ["PatientID", "PatientBirthDate"]}
    assert volume_sha256(read_volume(job)) == volume_sha256(read_volume(s.folder))


def test_find_by_study_patient_and_modality(pacs, tmp_path):
    """QIDO-RS by StudyInstanceUID, by PatientID and by modality finds exactly what was stored."""
    s, dsets = _series(tmp_path)
    pacs.store(dsets)
    studies = pacs.find_studies(study_uid=s.study_uid)
    assert [x.study_uid for x in studies] == [s.study_uid]
    assert studies[0].modalities == ("CT",) and studies[0].n_series == 1
    assert s.study_uid in {x.study_uid for x in pacs.find_studies(patient_id=FAKE_PHI["PatientID"])}
    series = pacs.find_series(study_uid=s.study_uid)
    assert [(h.series_uid, h.modality, h.n_instances) for h in series] == [(s.series_uid, "CT", 12)]
    assert s.series_uid in {h.series_uid for h in pacs.find_series(patient_id=FAKE_PHI["PatientID"])}
    assert pacs.find_series(study_uid=s.study_uid, modality="MR") == []
    assert pacs.find_studies(patient_id="NOBODY-" + generate_uid()[-8:]) == []
    assert pacs.locate_series(s.series_uid).study_uid == s.study_uid  # a lesion keeps series UIDs only
    with pytest.raises(PacsError, match="^The series is not in the PACS"):
        pacs.locate_series(generate_uid())
    assert "SYN" not in repr(series[0])  # identity values never in a repr


def _plan_folder(tmp_path: Path) -> tuple[Path, object]:
    """A plan folder as 'osteoplan plan' writes it: dicom/ct, dicom/seg.dcm, dicom/sr.dcm and report.pdf."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
    from export_planfactory import make_plan
    from matplotlib.figure import Figure

    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.export.dicom import write_dicom
    from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine

    rng = np.random.default_rng(3)
    info = AcquisitionInfo(modality="CT", study_uid=generate_uid(), frame_of_reference_uid=generate_uid())
    vol = Volume(rng.normal(0, 200, (10, 24, 26)).astype(np.float32), axis_aligned_affine((2.0, 0.8, 0.8),
                                                                                         (-10.0, -9.0, -12.0)), info)
    c2 = np.zeros(vol.shape, bool)
    c2[3:7, 8:16, 8:16] = True
    lm = LabelMap(vol, {"vertebrae_C2": c2}, {"vertebrae_C2": "classical"})
    plan = make_plan(vol, [9.0, -5.0, -4.0], [3.0, -1.0, -2.0], [0.5, 0.25, 0.0])
    d = tmp_path / "plan"
    write_dicom(d / "dicom", plan, vol, lm, case_label="T1")
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    fig.savefig(d / "report.pdf")
    return d, vol


def test_results_stored_reference_the_ct_and_are_found_again(pacs, tmp_path):
    """SEG, SR and Encapsulated PDF go to the CT's study, reference its series, and are found by QIDO; again = same."""
    from osteoplan.export.dicom import ENCAPSULATED_PDF_STORAGE
    from osteoplan.pacs.results import result_objects

    d, vol = _plan_folder(tmp_path)
    objs = result_objects(d)
    assert objs.counts() == {"CT": 10, "SEG": 1, "SR": 1, "PDF": 1}
    report = pacs.store(objs.datasets, objs.labels)
    assert report.complete and len(report.stored) == 13
    found = {h.modality: h for h in pacs.find_series(study_uid=vol.info.study_uid, modality=None)}
    assert set(found) == {"CT", "SEG", "SR", "DOC"}
    assert (found["CT"].n_instances, found["SEG"].n_instances, found["SR"].n_instances, found["DOC"].n_instances) \
        == (10, 1, 1, 1)
    ct_series = found["CT"].series_uid
    ct_sops = {str(x.SOPInstanceUID) for x in objs.datasets[:10]}
    # read the three objects back from the PACS and check their references to the planning CT
    web = pacs._web
    seg = web.retrieve_series(vol.info.study_uid, found["SEG"].series_uid)[0]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_series
    assert {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} \
        == ct_sops
    assert seg.FrameOfReferenceUID == vol.info.frame_of_reference_uid
    sr = web.retrieve_series(vol.info.study_uid, found["SR"].series_uid)[0]
    evid = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evid.SeriesInstanceUID == ct_series
    pdf = web.retrieve_series(vol.info.study_uid, found["DOC"].series_uid)[0]
    assert pdf.SOPClassUID == ENCAPSULATED_PDF_STORAGE and pdf.MIMETypeOfEncapsulatedDocument == "application/pdf"
    raw = (d / "report.pdf").read_bytes()
    assert bytes(pdf.EncapsulatedDocument)[:len(raw)] == raw and int(pdf.EncapsulatedDocumentLength) == len(raw)
    assert {str(i.ReferencedSOPInstanceUID) for i in pdf.SourceInstanceSequence} == ct_sops
    # storing the same folder again (a retry) is complete and adds nothing: same instances, one copy each
    again = result_objects(d)
    assert pacs.store(again.datasets, again.labels).complete
    assert sorted((h.modality, h.n_instances) for h in pacs.find_series(study_uid=vol.info.study_uid, modality=None)) \
        == [("CT", 10), ("DOC", 1), ("SEG", 1), ("SR", 1)]


def test_store_filtered_out_by_the_pacs_is_reported_per_instance(pacs, tmp_path):
    """Orthanc's Lua filter drops a series yet STOW-RS says 'stored': QIDO verification catches it."""
    s, dsets = _series(tmp_path)
    ok = dsets[:3]
    refused = dsets[3:5]
    ruid = generate_uid()
    for ds in refused:
        ds.SeriesInstanceUID = ruid
        ds.SeriesDescription = "OSTEOPLAN-TEST-REFUSE by the PACS"
    with pytest.raises(PacsStoreError) as exc:
        pacs.store(ok + refused, ["CT"] * 3 + ["SR"] * 2)
    rep = exc.value.report
    assert [o.stored for o in rep.outcomes] == [True, True, True, False, False]
    assert all("not found by QIDO" in o.reason for o in rep.failed)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("Store to the PACS incomplete: 3 of 5 object(s) stored (CT)")
    assert "Storing again is safe" in msg
    assert pacs.instance_uids(s.study_uid, ruid) == set()


def test_store_into_another_study_fails_with_the_pacs_reason(pacs, tmp_path):
    """STOW-RS to /studies/{other}: Orthanc answers a Failed SOP Sequence; the reason code is reported."""
    s, dsets = _series(tmp_path)
    with pytest.raises(PacsStoreError) as exc:
        pacs.store(dsets[:2], study_uid=generate_uid())
    assert [o.stored for o in exc.value.report.outcomes] == [False, False]
    assert "0 of 2 object(s) stored (none)" in str(exc.value)
    assert "code 0x" in exc.value.report.failed[0].reason


def test_vanished_series_is_one_clear_line(pacs, orthanc_rest, tmp_path):
    """A series deleted after it was listed: retrieving it says so, nothing is read."""
    s, dsets = _series(tmp_path)
    pacs.store(dsets)
    hit = pacs.find_series(study_uid=s.study_uid)[0]
    root, rest = orthanc_rest
    found = rest.post(root + "/tools/lookup", data=s.series_uid).json()
    assert rest.delete(root + found[0]["Path"]).status_code == 200
    with pytest.raises(PacsError, match=r"^The series is no longer in the PACS \(deleted or moved"):
        pacs.read_series(hit.study_uid, hit.series_uid)


def test_connection_refused_timeout_and_bad_credentials(orthanc, closed_port_url, silent_server, tmp_path):
    """Refused, hung and wrong-password PACS: one line each, no password; a retry on the real PACS works."""
    root, user, password = orthanc
    with pytest.raises(PacsUnreachableError) as exc:
        PacsClient(PacsConfig(closed_port_url, timeout_s=2, retries=1)).find_studies(patient_id="X")
    assert str(exc.value).startswith("Cannot connect to the PACS at http://127.0.0.1:")
    with pytest.raises(PacsError) as exc:
        PacsClient(PacsConfig(silent_server, timeout_s=0.5, retries=1)).find_series(study_uid="1.2.3")
    assert "did not answer within 0.5 s while searching series" in str(exc.value)
    s, dsets = _series(tmp_path)
    with pytest.raises(PacsError) as exc:  # a store to a hung PACS: nothing known stored, one line
        PacsClient(PacsConfig(silent_server, timeout_s=0.5, retries=1)).store(dsets[:1])
    assert "did not answer within 0.5 s while storing objects" in str(exc.value)
    bad = PacsClient(PacsConfig(root + "/dicom-web", username=user, password="wrong-" + password, timeout_s=5,
                                retries=1))
    with pytest.raises(PacsUnreachableError) as exc:
        bad.store(dsets[:1])
    assert "refused the credentials (HTTP 401)" in str(exc.value) and password not in str(exc.value)
    good = PacsClient(PacsConfig(root + "/dicom-web", username=user, password=password, timeout_s=5))
    assert good.store(dsets).complete  # retry with the right settings: stored
    for e in ("\n",):
        assert e not in str(exc.value)


def test_cli_find_get_put(orthanc, tmp_path, monkeypatch, capsys):
    """osteoplan pacs find / get / put against Orthanc, configured by the environment."""
    from osteoplan.cli import main

    root, user, password = orthanc
    monkeypatch.setenv("OSTEOPLAN_PACS_URL", root + "/dicom-web")
    monkeypatch.setenv("OSTEOPLAN_PACS_USERNAME", user)
    monkeypatch.setenv("OSTEOPLAN_PACS_PASSWORD", password)
    monkeypatch.setenv("OSTEOPLAN_PACS_CONFIG", str(tmp_path / "absent.toml"))
    s, dsets = _series(tmp_path)
    PacsClient(PacsConfig(root + "/dicom-web", username=user, password=password)).store(dsets)
    assert main(["pacs", "find", "--study", s.study_uid, "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert [(r["series_uid"], r["images"], r["modality"]) for r in rows] == [(s.series_uid, 12, "CT")]
    assert main(["pacs", "get", s.study_uid, s.series_uid, "--out", str(tmp_path / "got")]) == 0
    out = capsys.readouterr().out
    assert "12 images written" in out
    np.testing.assert_array_equal(read_volume(tmp_path / "got" / "dicom").array, read_volume(s.folder).array)
    d, vol = _plan_folder(tmp_path)
    assert main(["pacs", "put", str(d)]) == 0
    out = capsys.readouterr().out
    assert "stored 10 CT, 1 SEG, 1 SR, 1 PDF as a new study" in out and "all 13 object(s) stored" in out
    assert password not in out
    monkeypatch.setenv("OSTEOPLAN_PACS_PASSWORD", "wrong")
    assert main(["pacs", "find", "--study", s.study_uid]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The PACS at http://127.0.0.1:") and err.count("\n") == 1 and "wrong" not in err


def test_compressed_series_round_trip(pacs, tmp_path):
    """A JPEG 2000 lossless series stored and retrieved (whatever transfer syntax the PACS answers) is the same volume."""
    from pydicom.uid import JPEG2000Lossless

    s, dsets = _series(tmp_path, rows=32, cols=32, transfer_syntax=JPEG2000Lossless)
    assert str(dsets[0].file_meta.TransferSyntaxUID) == JPEG2000Lossless
    assert pacs.store(dsets).complete
    got = pacs.read_series(s.study_uid, s.series_uid)
    assert volume_sha256(got.volume) == volume_sha256(read_volume(s.folder))


@pytest.mark.slow
@pytest.mark.realdata
def test_cthead_through_the_pacs_is_the_same_volume(pacs, shared_data):
    """The real CThead series (113 slices of 256 x 256) stored and read back over DICOMweb: same volume hash."""
    import time

    files = sorted((shared_data / "cthead" / "dicom" / "clean").glob("*.dcm"))
    assert len(files) == 113
    dsets = [pydicom.dcmread(p) for p in files]
    study, series = str(dsets[0].StudyInstanceUID), str(dsets[0].SeriesInstanceUID)
    t0 = time.perf_counter()
    assert pacs.store(dsets).complete
    t1 = time.perf_counter()
    got = pacs.read_series(study, series)
    t2 = time.perf_counter()
    local = read_volume(files[0].parent)
    assert got.volume.shape == (113, 256, 256) and volume_sha256(got.volume) == volume_sha256(local)
    src = ct_source_of(got.volume)
    assert (src.study_uid, src.series_uid) == (study, series)
    print(f"\nCThead via Orthanc: store+verify {t1 - t0:.2f} s, retrieve+read {t2 - t1:.2f} s")


def test_results_reference_the_source_series_itself(pacs, tmp_path):
    """Plan made on a PACS series: SEG, SR and PDF reference that series (no copy), join its study and patient."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
    from export_planfactory import make_plan

    from osteoplan.anatomy.labelmap import LabelMap
    from osteoplan.pacs.results import series_headers, source_results

    s, dsets = _series(tmp_path)
    assert pacs.store(dsets).complete
    vol = pacs.read_series(s.study_uid, s.series_uid).volume
    c2 = np.zeros(vol.shape, bool)
    c2[3:8, 5:15, 5:12] = True
    lm = LabelMap(vol, {"vertebrae_C2": c2}, {"vertebrae_C2": "classical"})
    centre = vol.index_to_world(np.array([5.0, 10.0, 8.0]))
    plan = make_plan(vol, centre + [30, -30, -5], centre + [2, -3, 0], centre)
    headers = series_headers(pacs, s.study_uid, s.series_uid)
    objs = source_results(plan, lm, headers, pdf=b"%PDF-1.4\n%%EOF\n")
    assert objs.labels == ["SEG", "SR", "PDF"]
    report = pacs.store(objs.datasets, objs.labels)
    assert report.complete
    found = sorted((h.modality, h.n_instances) for h in pacs.find_series(study_uid=s.study_uid, modality=None))
    assert found == [("CT", 12), ("DOC", 1), ("SEG", 1), ("SR", 1)]  # no CT copy
    sops = {str(d.SOPInstanceUID) for d in dsets}
    seg, sr, pdf = objs.datasets
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == s.series_uid
    assert {str(i.ReferencedSOPInstanceUID) for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence} == sops
    # SEG frame k lies at the position of the source image of slice k
    pos = {tuple(np.round(np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, float), 3))
           for f in seg.PerFrameFunctionalGroupsSequence}
    want = {tuple(np.round(vol.index_to_world(np.array([k, 0.0, 0.0])), 3)) for k in range(3, 8)}
    assert pos == want
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].SeriesInstanceUID == s.series_uid
    assert {str(i.ReferencedSOPInstanceUID) for i in pdf.SourceInstanceSequence} == sops
    for ds in objs.datasets:
        assert (ds.PatientID, ds.StudyInstanceUID) == (FAKE_PHI["PatientID"], s.study_uid)
    assert seg.FrameOfReferenceUID == dsets[0].FrameOfReferenceUID
    # building again gives the same instances: a retry adds nothing
    again = source_results(plan, lm, headers, pdf=b"%PDF-1.4\n%%EOF\n")
    assert [str(d.SOPInstanceUID) for d in again.datasets] == [str(d.SOPInstanceUID) for d in objs.datasets]
    # the SR's texts come back from the PACS exactly (no character replaced by the source's Latin-1 character set)
    from osteoplan.export.dicom import sr_verdict
    from osteoplan.planning.verdict import verdict_of

    back = pacs._web.retrieve_series(s.study_uid, str(sr.SeriesInstanceUID))[0]
    assert sr_verdict(back) == verdict_of(plan).text_en

    def texts(ds):
        out = []
        for it in getattr(ds, "ContentSequence", []):
            if getattr(it, "ValueType", "") == "TEXT":
                out.append(str(it.TextValue))
            out += texts(it)
        return out

    sent = texts(sr)
    assert any(not t.isascii() for t in sent)  # this plan's texts do hold non-ASCII characters
    assert texts(back) == sent
    # a cropped volume is not the source grid: refused, the caller stores a CT copy instead
    from osteoplan.errors import InputError
    from osteoplan.planning.model import CTGeometry

    cropped = plan.model_copy(update={"ct": CTGeometry(shape_kji=(10, 24, 20), spacing_mm=plan.ct.spacing_mm,
                                                      affine=plan.ct.affine)})
    with pytest.raises(InputError, match="12 images and the plan's CT 10 slices"):
        source_results(cropped, None, headers)


def test_cli_put_references_the_plans_source_series(orthanc, pacs, tmp_path, monkeypatch, capsys):
    """osteoplan pacs put on a plan made on a PACS series (ct_source in plan.json): SEG/SR/PDF on that series."""
    import json

    import nibabel as nib

    sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
    from export_planfactory import make_plan

    from osteoplan.cli import main
    from osteoplan.export import save_ct_nifti
    from osteoplan.imaging.volume import Volume
    from osteoplan.planning.model import save_plan

    root, user, password = orthanc
    for k, v in {"OSTEOPLAN_PACS_URL": root + "/dicom-web", "OSTEOPLAN_PACS_USERNAME": user,
                 "OSTEOPLAN_PACS_PASSWORD": password, "OSTEOPLAN_PACS_CONFIG": str(tmp_path / "absent.toml")}.items():
        monkeypatch.setenv(k, v)
    s, dsets = _series(tmp_path)
    assert pacs.store(dsets).complete
    vol = pacs.read_series(s.study_uid, s.series_uid).volume
    centre = vol.index_to_world(np.array([5.0, 10.0, 8.0]))
    plan = make_plan(vol, centre + [30, -30, -5], centre + [2, -3, 0], centre)
    plan = plan.model_copy(update={"ct_source": ct_source_of(vol)})
    d = tmp_path / "plan"
    d.mkdir()
    save_plan(plan, d / "plan.json")
    save_ct_nifti(d / "ct.nii.gz", vol)
    lab = np.zeros(vol.shape, np.int16)
    lab[3:8, 5:15, 5:12] = 1
    nib.save(Volume(lab.astype(np.float32), vol.affine).to_nifti(), str(d / "labels.nii.gz"))
    (d / "labels.json").write_text(json.dumps({"labels": {"1": "vertebrae_C2"}, "sources": {"vertebrae_C2": "test"}}))
    (d / "report.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    assert main(["pacs", "put", str(d)]) == 0
    out = capsys.readouterr().out
    assert "stored 1 SEG, 1 SR, 1 PDF referencing the PACS series the plan was made on (no CT copy)" in out
    assert sorted((h.modality, h.n_instances) for h in pacs.find_series(study_uid=s.study_uid, modality=None)) == \
        [("CT", 12), ("DOC", 1), ("SEG", 1), ("SR", 1)]
    assert main(["pacs", "put", str(d)]) == 0  # again: the same instances, nothing added
    assert sorted((h.modality, h.n_instances) for h in pacs.find_series(study_uid=s.study_uid, modality=None)) == \
        [("CT", 12), ("DOC", 1), ("SEG", 1), ("SR", 1)]


def test_a_volume_stored_as_ct_reads_back_identical(pacs):
    """store_volume (demo seeding): the PACS series read back is the same volume (hash), with its patient."""
    from osteoplan.imaging.volume import Volume, axis_aligned_affine
    from osteoplan.pacs.seed import store_volume

    rng = np.random.default_rng(8)
    vol = Volume(rng.integers(-1024, 3000, (7, 9, 11)).astype(np.float32),
                 axis_aligned_affine((2.5, 0.6, 0.6), (-20.0, -15.0, -120.0)))
    patient = {"PatientID": "DEMO-0007", "PatientName": "DEMO^SEVEN", "PatientBirthDate": "19550102",
               "PatientSex": "M"}
    study, series = store_volume(pacs, vol, patient)
    got = pacs.read_series(study, series, case=PatientIdentity(patient_id="DEMO-0007", family_name="Demo",
                                                               given_name="Seven", birth_date="1955-01-02", sex="male"))
    assert got.identity_check.verified and len(got.identity_check.compared) == 4
    assert volume_sha256(got.volume) == volume_sha256(vol)
