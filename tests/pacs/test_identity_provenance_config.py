"""Without a PACS: the patient-identity check, the plan's CT provenance (UIDs + volume hash), the PACS settings,
and the Encapsulated PDF (dciodvfy)."""

from __future__ import annotations

import logging
import shutil
import subprocess

import numpy as np
import pytest
from pydicom.dataset import Dataset

from osteoplan.errors import InputError, PatientIdentityError
from osteoplan.imaging.identity import PatientIdentity, check_ct_matches_case, compare_identities
from osteoplan.imaging.volume import AcquisitionInfo, Volume, axis_aligned_affine
from osteoplan.pacs.config import PacsConfig, load_config
from osteoplan.planning.provenance import check_plan_volume, ct_source_of, volume_sha256


def _ct(**kw) -> Dataset:
    ds = Dataset()
    ds.PatientName = kw.get("name", "DUPONT^Hélène^Marie")
    ds.PatientID = kw.get("pid", "IPP-004521")
    ds.PatientBirthDate = kw.get("dob", "19480312")
    ds.PatientSex = kw.get("sex", "F")
    if kw.get("removed"):
        ds.PatientIdentityRemoved = "YES"
    return ds


class _Record:  # the registry's Patient, as far as identity goes
    def __init__(self, **kw):
        self.hospital_id = kw.get("hospital_id", "ipp-004521 ")
        self.family_name = kw.get("family_name", "Dupont")
        self.given_name = kw.get("given_name", "Helene")
        self.birth_date = kw.get("birth_date", "1948-03-12")
        self.birth_year = kw.get("birth_year", 1948)
        self.sex = kw.get("sex", "female")


class TestIdentity:
    def test_same_patient_matches_across_case_accents_and_formats(self):
        """Letter case, accents, DICOM vs ISO dates and M/F vs male/female do not make a mismatch."""
        res = check_ct_matches_case(_ct(), _Record())
        assert res.verified and res.differing == ()
        assert set(res.compared) == {"PatientID", "PatientName", "PatientBirthDate", "PatientSex"}

    def test_wrong_patient_refused_with_attribute_names_only(self, caplog):
        """Another patient's CT: the message and the log name PatientID and PatientName, never a value."""
        other = _Record(hospital_id="IPP-777000", family_name="Durand", given_name="Paul")
        with caplog.at_level(logging.DEBUG), pytest.raises(PatientIdentityError) as exc:
            check_ct_matches_case(_ct(), other)
        msg = str(exc.value)
        assert msg.startswith("This CT belongs to another patient than the case: PatientID, PatientName differ "
                              "(PatientBirthDate, PatientSex agree).")
        for value in ("004521", "777000", "DUPONT", "Dupont", "Durand", "Paul", "Hélène", "1948", "19480312"):
            assert value not in msg and value not in caplog.text

    def test_one_differing_attribute_is_enough(self):
        """Same name and ID but another birth date (a namesake, or a typo): refused, PatientBirthDate named."""
        with pytest.raises(PatientIdentityError, match=r"PatientBirthDate differs \(PatientID, PatientName, "
                                                       r"PatientSex agree\)"):
            check_ct_matches_case(_ct(dob="19480313"), _Record())

    def test_birth_year_only_and_missing_fields(self):
        """A case with only a birth year compares the year; fields unknown on one side are listed as not compared."""
        rec = _Record(birth_date=None, birth_year=1948, given_name=None, sex="unknown")
        res = compare_identities(PatientIdentity.from_dataset(_ct()), PatientIdentity.from_record(rec))
        assert res.compared == ("PatientID", "PatientName", "PatientBirthDate") and res.not_compared == ("PatientSex",)
        assert compare_identities(PatientIdentity.from_dataset(_ct()),
                                  PatientIdentity.from_record(_Record(birth_date=None, birth_year=1949))
                                  ).differing == ("PatientBirthDate",)

    def test_unverifiable_needs_explicit_consent(self):
        """A de-identified CT or a case without identity cannot be verified: refused unless allowed, never silent."""
        with pytest.raises(PatientIdentityError, match="de-identified"):
            check_ct_matches_case(_ct(removed=True), _Record())
        res = check_ct_matches_case(_ct(removed=True), _Record(), allow_unverified=True)
        assert not res.verified and res.compared == () and len(res.not_compared) == 4
        empty = _Record(hospital_id=None, family_name=None, given_name=None, birth_date=None, birth_year=None,
                        sex="unknown")
        with pytest.raises(PatientIdentityError, match="share no identifying attribute"):
            check_ct_matches_case(_ct(), empty)

    def test_repr_hides_values(self):
        ident = PatientIdentity.from_dataset(_ct())
        assert "DUPONT" not in repr(ident) and "004521" not in repr(ident) and "1948" not in repr(ident)


class TestProvenance:
    def _vol(self, info=None):
        rng = np.random.default_rng(5)
        return Volume(rng.normal(0, 300, (5, 6, 7)).astype(np.float32),
                      axis_aligned_affine((2.0, 0.75, 0.75), (-1.0, 2.0, -30.0)), info or AcquisitionInfo())

    def test_hash_recipe_by_hand(self):
        """The hash is SHA-256 of the documented header + float32 LE voxels (computed here independently)."""
        import hashlib

        v = self._vol()
        aff = [0, 0, 0.75, -1.0, 0, 0.75, 0, 2.0, 2.0, 0, 0, -30.0, 0, 0, 0, 1.0]
        head = "osteoplan-volume-v1 shape=5,6,7 affine=" + ",".join(f"{x:.6f}" for x in aff) + "\n"
        want = hashlib.sha256(head.encode() + v.array.astype("<f4").tobytes()).hexdigest()
        assert volume_sha256(v) == want

    def test_hash_changes_with_one_voxel_and_with_geometry_only(self):
        v = self._vol()
        h = volume_sha256(v)
        a = v.array.copy()
        a[2, 3, 4] += 1.0
        assert volume_sha256(v.with_array(a)) != h
        moved = v.affine.copy()
        moved[2, 3] += 0.01  # 10 micrometres along z: another geometry, same voxels
        assert volume_sha256(Volume(v.array, moved)) != h
        assert volume_sha256(Volume(v.array.copy(), v.affine + 1e-9)) == h  # below the 1e-6 mm rounding

    def test_ct_source_round_trips_in_plan_json(self):
        """ct_source holds the UIDs and the hash, survives JSON, validates against the shipped schema."""
        import json
        import sys
        from pathlib import Path

        import jsonschema

        sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
        from export_planfactory import make_plan

        from osteoplan.planning.model import SCHEMA_PATH, Plan

        info = AcquisitionInfo(study_uid="1.2.3.4", series_uid="1.2.3.4.5", frame_of_reference_uid="1.2.3.4.6")
        v = self._vol(info)
        plan = make_plan(v, [9.0, -5.0, -4.0], [3.0, -1.0, -2.0], [0.5, 0.25, 0.0])
        plan = plan.model_copy(update={"ct_source": ct_source_of(v)})
        back = Plan.from_json(plan.to_json())
        assert back.ct_source == plan.ct_source
        assert (back.ct_source.study_uid, back.ct_source.series_uid, back.ct_source.frame_of_reference_uid) == \
            ("1.2.3.4", "1.2.3.4.5", "1.2.3.4.6")
        jsonschema.validate(json.loads(plan.to_json()), json.loads(SCHEMA_PATH.read_text()))
        check_plan_volume(back, v)  # the same volume: accepted
        a = v.array.copy()
        a[0, 0, 0] = 3000.0
        with pytest.raises(InputError, match="volume hash differs"):
            check_plan_volume(back, v.with_array(a))
        other = Volume(v.array, v.affine, AcquisitionInfo(series_uid="9.9.9"))
        with pytest.raises(InputError, match="SeriesInstanceUID differs"):
            check_plan_volume(back, other)


class TestConfig:
    def test_file_then_env_then_overrides_and_secrets_hidden(self, tmp_path):
        f = tmp_path / "pacs.toml"
        f.write_text('[pacs]\nurl = "http://pacs.example:8042/dicom-web/"\nusername = "u"\npassword = "s3cret-pw"\n'
                     "timeout_s = 12\n")
        f.chmod(0o600)
        cfg = load_config(f, env={})
        assert (cfg.url, cfg.timeout_s, cfg.username) == ("http://pacs.example:8042/dicom-web", 12.0, "u")
        assert "s3cret-pw" not in repr(cfg) and "s3cret-pw" not in str(cfg)
        cfg = load_config(f, env={"OSTEOPLAN_PACS_TIMEOUT_S": "3.5"}, url="https://other:443/dw")
        assert (cfg.url, cfg.timeout_s) == ("https://other:443/dw", 3.5)
        tok = load_config(None,
                          env={"OSTEOPLAN_PACS_CONFIG": str(tmp_path / "absent.toml"), "OSTEOPLAN_PACS_URL": "http://h/dw",
                               "OSTEOPLAN_PACS_TOKEN": "tkn-123"})
        assert tok.token == "tkn-123" and tok.username is None and "tkn-123" not in repr(tok)

    def test_refusals(self, tmp_path):
        with pytest.raises(InputError, match="No PACS configured"):
            load_config(None, env={"OSTEOPLAN_PACS_CONFIG": str(tmp_path / "x.toml")})
        with pytest.raises(InputError, match="must be an http"):
            PacsConfig("ftp://pacs/dw")
        with pytest.raises(InputError, match="Do not put credentials in the PACS URL"):
            PacsConfig("http://u:pw@pacs/dw")
        with pytest.raises(InputError, match="positive"):
            PacsConfig("http://pacs/dw", timeout_s=0)
        with pytest.raises(InputError, match="not both"):
            PacsConfig("http://pacs/dw", username="u", password="p", token="t")
        bad = tmp_path / "bad.toml"
        bad.write_text('[pacs]\nurl = "http://pacs/dw"\npasword = "typo"\n')
        with pytest.raises(InputError, match="Unknown key"):
            load_config(bad, env={})
        with pytest.raises(InputError, match="does not exist"):
            load_config(tmp_path / "missing.toml", env={})


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) not installed")
def test_encapsulated_pdf_passes_dciodvfy(tmp_path):
    """The Encapsulated PDF instance is a valid IOD (dciodvfy: no Error line) and refers to every CT slice."""
    from osteoplan.export.dicom import DicomContext, build_encapsulated_pdf, ct_datasets

    v = Volume(np.zeros((3, 4, 5), np.float32), axis_aligned_affine((2.0, 1.0, 1.0)))
    ct = ct_datasets(v, DicomContext.for_volume(v, "T1"))
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    ds = build_encapsulated_pdf(pdf, ct)
    assert len(ds.SourceInstanceSequence) == 3 and ds.StudyInstanceUID == ct[0].StudyInstanceUID
    assert build_encapsulated_pdf(pdf, ct).SOPInstanceUID == ds.SOPInstanceUID  # same files -> same instance
    p = tmp_path / "pdf.dcm"
    ds.save_as(p, enforce_file_format=True)
    res = subprocess.run(["dciodvfy", str(p)], capture_output=True, text=True, timeout=60)
    errors = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("Error")]
    assert errors == []
    with pytest.raises(InputError, match="not a PDF"):
        build_encapsulated_pdf(b"<html>", ct)
