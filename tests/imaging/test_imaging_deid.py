"""De-identification: dicognito Basic Profile + private/free text removal + independent verification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from osteoplan.atomic import MANIFEST_NAME
from osteoplan.errors import DeidentificationError, InputError
from osteoplan.imaging import read_volume, synth
from osteoplan.imaging import deid as deid_mod
from osteoplan.imaging.deid import collect_identifying_values, deidentify_folder

# every fictitious identifying value of the shared data set (cthead/dicom/clean and private_phi)
SHARED_PHI = ["TESTPERSON", "CAMILLE", "FAKE-000123", "19580214", "14/02/1958", "Hopital Fictif Exemple",
              "ACC998877", "CTFICT01", "OPERATEUR^FICTIF", "MEDECIN^FICTIF", "1 rue Imaginaire", "Nullepart",
              "ne le 14/02/1958"]
SYNTH_PHI = ["SYNTHPATIENT", "ZEPHYRINE", "SYN-778899", "19610723", "23/07/1961", "Clinique Synthetique",
             "42 avenue Inventee", "SACC445566", "SYNSTATION7", "OPSYNTH^BERNARD", "DRSYNTH^CLAUDE",
             "REQSYNTH^DOMINIQUE", "Nulleville"]


def grep_bytes(folder: Path, values: list[str]) -> list[tuple[str, str]]:
    """(file, value) for every value found (any case) in the raw bytes of any file under folder."""
    hits = []
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            data = f.read_bytes().lower()
            hits += [(f.name, v) for v in values if v.lower().encode("latin-1") in data]
    return hits


def test_synthetic_series_deid_removes_everything_and_keeps_volume(tmp_path):
    src = tmp_path / "in"
    a = synth.write_series(src / "PATIENT SYNTHPATIENT", seed=1, prefix="SYNTHPATIENT_")
    b = synth.write_series(src / "PATIENT SYNTHPATIENT", seed=2, prefix="thick_", n_slices=6, step=4.0,
                           study_uid=a.study_uid, rows=12, cols=10, pixel_spacing=(1.6, 1.2))
    synth.write_junk(src / "notes.txt")
    assert grep_bytes(src, SYNTH_PHI)  # the values are really there before
    rep = deidentify_folder(src, tmp_path / "out", key="secret-1", date_shift_days=-40)
    out = tmp_path / "out"
    assert rep.files_written == 18 and rep.series == 2 and rep.files_skipped == 1
    assert grep_bytes(out, SYNTH_PHI) == []
    # names carry no identifier: <series>/<instance>.dcm
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.dcm"))
    assert names[0] == "001/0001.dcm" and all(len(n) == len("001/0001.dcm") for n in names)
    # consistency across the study: one study UID, two series UIDs, one frame of reference per series
    dss = [pydicom.dcmread(p) for p in out.rglob("*.dcm")]
    assert len({d.StudyInstanceUID for d in dss}) == 1 and dss[0].StudyInstanceUID != a.study_uid
    assert len({d.SeriesInstanceUID for d in dss}) == 2
    assert {d.StudyDate for d in dss} == {"20240125"}  # 2024-03-05 minus 40 days (leap year: Feb has 29)
    assert all(d.PatientIdentityRemoved == "YES" for d in dss)
    assert not any(e.tag.is_private for d in dss for e in d.iterall())
    assert all("ImageComments" not in d and "RequestAttributesSequence" not in d for d in dss)
    assert all(d.PatientBirthDate == "" for d in dss)
    # same volumes
    va, vb = read_volume(src, series_uid=a.series_uid), read_volume(out)
    np.testing.assert_array_equal(va.array, vb.array)
    np.testing.assert_allclose(va.affine, vb.affine)
    # the same key maps UIDs the same way (a second run, e.g. a later export of the same study)
    deidentify_folder(src, tmp_path / "out2", key="secret-1", date_shift_days=-40)
    d2 = pydicom.dcmread(tmp_path / "out2" / "001" / "0001.dcm")
    assert d2.StudyInstanceUID == dss[0].StudyInstanceUID
    # and read_volume(deidentify=True) pseudonymises the same way
    vm = read_volume(src, series_uid=a.series_uid, deidentify=True, key="secret-1")
    assert vm.info.study_uid == dss[0].StudyInstanceUID
    assert vm.info.series_uid in {d.SeriesInstanceUID for d in dss}


def test_verification_catches_a_survivor_and_nothing_is_written(tmp_path, monkeypatch):
    src = tmp_path / "in"
    synth.write_series(src, n_slices=3)
    original = deid_mod.apply_profile

    def leaky(ds, anonymizer):
        original(ds, anonymizer)
        from pydicom.dataset import Dataset
        from pydicom.sequence import Sequence

        item = Dataset()
        item.TextValue = "note about synthpatient"  # deep in a sequence, lower case
        ds.ContentSequence = Sequence([item])

    monkeypatch.setattr(deid_mod, "apply_profile", leaky)
    with pytest.raises(DeidentificationError) as e:
        deidentify_folder(src, tmp_path / "out", key="k")
    assert "PatientName" in str(e.value) and "TextValue" in str(e.value)
    assert "SYNTHPATIENT" not in str(e.value).upper()
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no half-written folder


def test_verification_catches_private_tag_survivor(tmp_path, monkeypatch):
    src = tmp_path / "in"
    synth.write_series(src, n_slices=3)
    monkeypatch.setattr(pydicom.Dataset, "remove_private_tags", lambda self: None)
    with pytest.raises(DeidentificationError, match="private"):
        deidentify_folder(src, tmp_path / "out", key="k")
    assert not (tmp_path / "out").exists()


def test_interrupted_deid_leaves_no_folder(tmp_path, monkeypatch):
    src = tmp_path / "in"
    synth.write_series(src, n_slices=6)
    calls = {"n": 0}
    original = deid_mod.apply_profile

    def interrupt(ds, anonymizer):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        original(ds, anonymizer)

    monkeypatch.setattr(deid_mod, "apply_profile", interrupt)
    with pytest.raises(KeyboardInterrupt):
        deidentify_folder(src, tmp_path / "out", key="k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_collect_identifying_values_sees_nested_private_and_comments(tmp_path):
    s = synth.write_series(tmp_path, n_slices=2)
    found = collect_identifying_values(pydicom.dcmread(s.files[0]))
    attrs = set(found.by_attribute)
    assert {"PatientName", "PatientID", "PatientBirthDate", "InstitutionName", "AccessionNumber", "StationName",
            "OperatorsName", "ReferringPhysicianName", "ImageComments", "RequestingPhysician",
            "InstitutionAddress", "StudyInstanceUID"} <= attrs
    assert any(a.startswith("private") for a in attrs)
    assert "23/07/1961" in found.by_attribute["PatientBirthDate"]  # spelled as in free text
    assert "ZEPHYRINE" in found.by_attribute["PatientName"]


def test_zero_date_shift_and_nonempty_output_refused(tmp_path):
    synth.write_series(tmp_path / "in", n_slices=2)
    with pytest.raises(InputError, match="0 days"):
        deidentify_folder(tmp_path / "in", tmp_path / "out", date_shift_days=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError, match="1 file.* osteoplan did not write"):  # other work is never replaced
        deidentify_folder(tmp_path / "in", tmp_path / "full", overwrite=True)


def test_read_volume_deidentify_in_memory(tmp_path):
    s = synth.write_series(tmp_path, description="CT of SYNTHPATIENT")
    v = read_volume(tmp_path, deidentify=True, key="k2")
    blob = repr(v.info.to_dict()) + " ".join(v.warnings)
    assert all(x.lower() not in blob.lower() for x in SYNTH_PHI)
    assert v.info.series_uid != s.series_uid and v.info.study_uid != s.study_uid
    assert v.info.series_description is None  # carried the patient's name
    assert read_volume(tmp_path, deidentify=True, key="k2").info.series_uid == v.info.series_uid


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize("case", ["dicom/clean", "dicom-pitfalls/private_phi"])
def test_shared_data_deid_grep_and_same_volume(shared_data, tmp_path, case):
    src = shared_data / "cthead" / case
    assert grep_bytes(src, SHARED_PHI[:4])  # the fictitious values are present in the input
    from osteoplan.cli import main

    assert main(["deid", str(src), str(tmp_path / "out"), "--key", "test-key", "--date-shift-days", "-365"]) == 0
    assert grep_bytes(tmp_path / "out", SHARED_PHI) == []
    a, b = read_volume(src), read_volume(tmp_path / "out")
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-9)
    assert not any(w for w in b.warnings)
    names = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    assert all(n.endswith(".dcm") and n[:4].isdigit() for n in names)


def test_burned_in_annotation_refused(tmp_path):
    s = synth.write_series(tmp_path / "in", n_slices=2)
    ds = pydicom.dcmread(s.files[0])
    ds.BurnedInAnnotation = "YES"
    ds.save_as(s.files[0])
    with pytest.raises(DeidentificationError, match="burned-in"):
        deidentify_folder(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_more_annex_e_attributes_and_nested_sequences(tmp_path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    s = synth.write_series(tmp_path / "in", n_slices=3)
    extra = {
        "AdmissionID": "ADM-55443322", "PatientAge": "062Y", "ProtocolName": "Neck SYNTHPATIENT special",
        "StudyDescription": "CT cou ZEPHYRINE", "PerformingPhysicianName": "PERFSYNTH^ODILE",
        "PatientAddress": "7 chemin Fictif Lointain", "PatientTelephoneNumbers": "0555123456",
        "OtherPatientIDs": "OTHERID-9988", "DeviceSerialNumber": "SN-SYNTH-0042",
        "InstitutionalDepartmentName": "Radiologie Synthetique Est",
    }
    for f in s.files:
        ds = pydicom.dcmread(f)
        for k, v in extra.items():
            setattr(ds, k, v)
        other = Dataset()
        other.PatientID = "NESTED-ID-7766"
        other.IssuerOfPatientID = "HOSPSYNTH"
        ds.OtherPatientIDsSequence = Sequence([other])
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = s.series_uid + ".77"
        ds.ReferencedImageSequence = Sequence([ref])
        ds.save_as(f)
    values = list(extra.values()) + ["NESTED-ID-7766", "HOSPSYNTH", s.series_uid + ".77"]
    assert len(grep_bytes(tmp_path / "in", values)) == 3 * len(values)
    deidentify_folder(tmp_path / "in", tmp_path / "out", key="k3")
    assert grep_bytes(tmp_path / "out", values + SYNTH_PHI) == []
    d = pydicom.dcmread(tmp_path / "out" / "001" / "0001.dcm")
    # the reference was remapped (UID consistent with the study), not dropped
    assert d.ReferencedImageSequence[0].ReferencedSOPInstanceUID.startswith("2.")
    assert d.ReferencedImageSequence[0].ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
