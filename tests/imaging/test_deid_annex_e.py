"""De-identification against PS3.15 Annex E Table E.1-1: a crafted series with an identifier in every place
where one survived the robustness campaign of issue 18, checked by a byte grep of the output in UTF-8 and in
each series' declared character set; and the independent verifier shown to catch each of them on its own."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from osteoplan.errors import DeidentificationError
from osteoplan.imaging import deid as deid_mod
from osteoplan.imaging import synth
from osteoplan.imaging.deid import deidentify_folder, name_needles

# one patient per declared character set; the name in its own script
PATIENTS = {
    "ISO_IR 192": ("YAMADA^TAROU=山田^太郎", ["山田", "太郎", "山田太郎", "YAMADA"]),
    "\\ISO 2022 IR 87": ("SUZUKI^HANAKO=鈴木^花子", ["鈴木", "花子", "鈴木花子", "SUZUKI"]),
    "\\ISO 2022 IR 149": ("KIMM^MINJUN=김^민준", ["김민준", "민준", "MINJUN"]),
}
PHONE = "+33 6 12 34 56 78"
ADDRESS = "12 rue des Lilas"


def _free(ident: str) -> str:
    return f"pt {ident} tel {PHONE}"


def _place_everything(ds: Dataset, ident: str) -> None:
    """Put *ident* (and a phone number, an address) in every place that survived before (issue 18)."""
    ds.PatientName = ds.PatientName  # keeps the series' patient
    # TextValue 3 levels deep
    leaf = Dataset()
    leaf.ValueType = "TEXT"
    leaf.TextValue = _free(ident)
    mid, top = Dataset(), Dataset()
    mid.ContentSequence = Sequence([leaf])
    top.ContentSequence = Sequence([mid])
    ds.ContentSequence = Sequence([top])
    ds.add_new(0x04000564, "LO", f"PACS {ident}")  # SourceOfPreviousValues
    ds.add_new(0x04000563, "LO", f"EDITOR {ident}")  # ModifyingSystem
    ds.ContrastBolusAgent = f"IOPAMIDOL {ident}"
    ds.IdentifyingComments = f"{ident}, {ADDRESS}"
    ds.add_new(0x00380040, "LO", f"fracture {ident}")  # DischargeDiagnosisDescription
    ds.add_new(0x00403001, "LO", f"VIP {ident}")  # ConfidentialityConstraintOnPatientDataDescription
    ds.add_new(0x00400310, "ST", _free(ident))  # CommentsOnRadiationDose
    ds.add_new(0x00189424, "LT", f"neck for {ident}")  # AcquisitionProtocolDescription
    ds.add_new(0x00101050, "LO", f"MUTUELLE {ident}")  # InsurancePlanIdentification
    ds.add_new(0x00080099, "LO", f"x {ident}")  # unknown public tag
    ds.add_new(0x00289999, "UN", f"y {ident} ".encode("utf-8"))  # unknown public tag, UN
    # overlay plane: data, description, label, comments
    ds.add_new(0x60000010, "US", int(ds.Rows))
    ds.add_new(0x60000011, "US", int(ds.Columns))
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [1, 1])
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60000022, "LO", f"ov {ident}")
    ds.add_new(0x60001500, "LO", f"lbl {ident}")
    ds.add_new(0x60004000, "LT", f"com {ident}")
    bits = (f"ovl {ident} ".encode("utf-8") * 200)[: (int(ds.Rows) * int(ds.Columns) + 7) // 8]
    ds.add_new(0x60003000, "OW", bits + b"\x00" * (len(bits) % 2))
    # file meta
    ds.file_meta.SourceApplicationEntityTitle = "SRC_YAMADA"
    ds.file_meta.SendingApplicationEntityTitle = "SND_YAMADA"
    ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
    ds.file_meta.PrivateInformation = f"pi {ident} ".encode("utf-8")


def _craft(folder: Path) -> dict[str, list[str]]:
    """Three series, one per character set; returns the identifying strings of each (by charset)."""
    out: dict[str, list[str]] = {}
    for i, (charset, (pn, parts)) in enumerate(PATIENTS.items()):
        s = synth.write_series(folder / f"s{i}", n_slices=2, seed=i)
        ident = parts[2] if len(parts) > 3 else parts[0]  # the name in its own script, as written in free text
        for f in s.files:
            ds = pydicom.dcmread(f)
            ds.SpecificCharacterSet = charset
            ds.PatientName = pn
            _place_everything(ds, ident)
            ds.save_as(f)
        out[charset] = parts + [PHONE, ADDRESS, "SRC_YAMADA", "SND_YAMADA"]
    return out


def _spellings(value: str, charset: str) -> set[bytes]:
    sp = {value.encode("utf-8")}
    try:
        coded = encode_string(value, convert_encodings([c for c in charset.split("\\")]))
    except Exception:
        coded = b""
    if coded:
        sp.add(coded)
        sp.add(re.sub(rb"\x1b[\x24\x28\x29][\x28\x29]?[\x40-\x7e]", b"", coded))  # the bare 2-byte codes
    return {s for s in sp if s}


def byte_grep(folder: Path, strings: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """(file, charset, value) for every spelling found in the raw bytes of any file under folder."""
    hits = []
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    blobs = {p: p.read_bytes() for p in files}
    for charset, values in strings.items():
        for v in values:
            for sp in _spellings(v, charset):
                hits += [(p.name, charset, v) for p, b in blobs.items() if sp in b]
    return hits


def test_crafted_series_every_place_zero_survivors(tmp_path):
    strings = _craft(tmp_path / "in")
    before = byte_grep(tmp_path / "in", strings)
    # every identifying string is really in the input, in every file of its series
    assert {(c, v) for _, c, v in before} == {(c, v) for c, vs in strings.items() for v in vs}
    rep = deidentify_folder(tmp_path / "in", tmp_path / "out", key="annex-e")
    assert rep.files_written == 6 and rep.series == 3
    assert byte_grep(tmp_path / "out", strings) == []
    for f in (tmp_path / "out").rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        assert [len(item) for item in ds.ContentSequence] == [0]  # D on a sequence: one empty (dummy) item
        assert ds.ModifyingSystem == deid_mod.DUMMY_TEXT  # D
        assert ds.SourceOfPreviousValues == "" and ds.ContrastBolusAgent == ""  # Z, Z/D
        for tag in (0x00084000, 0x00380040, 0x00403001, 0x00400310, 0x00189424, 0x00101050,  # X
                    0x00080099, 0x00289999):  # unknown public
            assert tag not in ds
        assert not any(e.tag.group & 0xFF00 == 0x6000 for e in ds)  # overlay removed
        assert sorted(int(e.tag) for e in ds.file_meta) == [0x00020000, 0x00020001, 0x00020002, 0x00020003,
                                                           0x00020010, 0x00020012, 0x00020013]
        assert deid_mod.profile_violations(ds) == []


# each place on its own, with the profile pass disabled (the behaviour before issue 18): the independent
# verifier refuses; with the profile pass the same input goes through clean
PLACES = {
    "TextValue 3 levels deep": lambda ds, n: _nested_text(ds, n),
    "SourceOfPreviousValues": lambda ds, n: ds.add_new(0x04000564, "LO", "PACS-WEST-2"),
    "ModifyingSystem": lambda ds, n: ds.add_new(0x04000563, "LO", "EDITOR-STATION-9"),
    "ContrastBolusAgent": lambda ds, n: setattr(ds, "ContrastBolusAgent", "IOPAMIDOL 300"),
    "IdentifyingComments": lambda ds, n: setattr(ds, "IdentifyingComments", ADDRESS),
    "DischargeDiagnosisDescription": lambda ds, n: ds.add_new(0x00380040, "LO", "C2 fracture"),
    "ConfidentialityConstraint": lambda ds, n: ds.add_new(0x00403001, "LO", "VIP"),
    "CommentsOnRadiationDose": lambda ds, n: ds.add_new(0x00400310, "ST", "low dose"),
    "AcquisitionProtocolDescription": lambda ds, n: ds.add_new(0x00189424, "LT", "neck"),
    "InsurancePlanIdentification": lambda ds, n: ds.add_new(0x00101050, "LO", "PLAN-77"),
    "unknown LO (0008,0099)": lambda ds, n: ds.add_new(0x00080099, "LO", "hello"),
    "unknown UN (0028,9999)": lambda ds, n: ds.add_new(0x00289999, "UN", b"hello "),
    "SourceApplicationEntityTitle": lambda ds, n: setattr(ds.file_meta, "SourceApplicationEntityTitle", "WARD7"),
    "SendingApplicationEntityTitle": lambda ds, n: setattr(ds.file_meta, "SendingApplicationEntityTitle", "WARD7"),
    "PrivateInformation": lambda ds, n: (setattr(ds.file_meta, "PrivateInformationCreatorUID", "1.2.3"),
                                         setattr(ds.file_meta, "PrivateInformation", b"abcd")),
    "OverlayData": lambda ds, n: ds.add_new(0x60003000, "OW", b"\x01\x00" * 30),
    "OverlayDescription": lambda ds, n: ds.add_new(0x60000022, "LO", "arrow"),
    "OverlayLabel": lambda ds, n: ds.add_new(0x60001500, "LO", "arrow"),
    "OverlayComments": lambda ds, n: ds.add_new(0x60004000, "LT", "arrow"),
    # the patient's own name, in a free-text attribute the table keeps (InterventionDescription, ST)
    "kanji name part (2 characters)": lambda ds, n: setattr(ds, "InterventionDescription", "山田さん"),
    "hangul name part (2 syllables)": lambda ds, n: setattr(ds, "InterventionDescription", "민준 씨"),
    "kanji full name without separator": lambda ds, n: setattr(ds, "InterventionDescription", "患者山田太郎"),
    "2-letter Latin name part as a word": lambda ds, n: setattr(ds, "InterventionDescription", "told Mr Wu"),
}


def _nested_text(ds: Dataset, note: str) -> None:
    leaf = Dataset()
    leaf.TextValue = note
    mid, top = Dataset(), Dataset()
    mid.ContentSequence = Sequence([leaf])
    top.ContentSequence = Sequence([mid])
    ds.ContentSequence = Sequence([top])


@pytest.mark.parametrize("place", sorted(PLACES))
def test_verifier_catches_each_former_survivor(tmp_path, monkeypatch, place):
    s = synth.write_series(tmp_path / "in", n_slices=2)
    for f in s.files:
        ds = pydicom.dcmread(f)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "WU^YAMADA TAROU=山田^太郎"
        ds.OtherPatientNames = "KIMM^MINJUN=김^민준"
        PLACES[place](ds, "call +33 6 12 34 56 78")
        ds.save_as(f)
    name_in_kept_text = place.startswith(("kanji", "hangul", "2-letter"))
    if name_in_kept_text:
        # free text the table keeps: only the name rule sees it, and it refuses (nothing written)
        with pytest.raises(DeidentificationError) as e:
            deidentify_folder(tmp_path / "in", tmp_path / "bad", key="k")
        assert "InterventionDescription" in str(e.value)
    else:
        # with the profile pass: clean output; without it (as before issue 18): the verifier refuses
        deidentify_folder(tmp_path / "in", tmp_path / "ok", key="k")
        original = deid_mod.apply_profile

        def old_profile(ds, anonymizer):
            monkeypatch.setattr(deid_mod, "apply_basic_profile_table", lambda d, b: 0)
            monkeypatch.setattr(deid_mod, "clean_file_meta", lambda d: 0)
            original(ds, anonymizer)

        monkeypatch.setattr(deid_mod, "apply_profile", old_profile)
        with pytest.raises(DeidentificationError) as e:
            deidentify_folder(tmp_path / "in", tmp_path / "bad", key="k")
    msg = str(e.value)
    assert "山田" not in msg and "민준" not in msg and "+33" not in msg and " Wu" not in msg
    assert not (tmp_path / "bad").exists()


def test_name_rule_short_and_non_latin_parts():
    sub, words = name_needles("WU^LI JUN=吴^力军")
    assert {"WU LI JUN", "LI JUN", "吴 力军", "吴力军", "力军吴", "力军"} <= sub
    assert "吴" not in sub  # one ideograph alone: too common a character
    assert words == {"WU", "LI", "JUN"} and "JUN" not in sub  # 2-3 letters: whole words in narrative text
    sub, words = name_needles("KIMM^MINJUN=김^민준")
    assert {"민준", "김민준", "김 민준", "MINJUN", "KIMM"} <= sub and "김" not in sub and words == set()
    sub, words = name_needles("O^A")  # 1-letter parts are never searched alone
    assert words == set() and "O A" not in sub


def test_short_latin_name_does_not_refuse_coded_values(tmp_path):
    """Patient HU^GE: RescaleType "HU" and Manufacturer "GE MEDICAL SYSTEMS" stay (coded/device values are
    not narrative text), and the name written in a sentence is caught."""
    s = synth.write_series(tmp_path / "in", n_slices=2)
    for f in s.files:
        ds = pydicom.dcmread(f)
        ds.PatientName = "HU^GE"
        ds.RescaleType = "HU"
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        ds.save_as(f)
    deidentify_folder(tmp_path / "in", tmp_path / "out", key="k")
    d = pydicom.dcmread(next((tmp_path / "out").rglob("*.dcm")))
    assert d.RescaleType == "HU" and d.Manufacturer == "GE MEDICAL SYSTEMS"
    for f in s.files:
        ds = pydicom.dcmread(f)
        ds.InterventionDescription = "Mr Hu agreed"
        ds.save_as(f)
    with pytest.raises(DeidentificationError, match="InterventionDescription"):
        deidentify_folder(tmp_path / "in", tmp_path / "out2", key="k")


def test_overlay_in_pixel_bits_refused(tmp_path):
    s = synth.write_series(tmp_path / "in", n_slices=2)
    ds = pydicom.dcmread(s.files[0])
    ds.add_new(0x60000100, "US", 16)
    ds.add_new(0x60000102, "US", 15)
    ds.save_as(s.files[0])
    with pytest.raises(DeidentificationError, match="overlay"):
        deidentify_folder(tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_every_table_action_is_applied(tmp_path):
    """One element per action of Table E.1-1 that dicognito does not replace, checked one by one."""
    prof = deid_mod.basic_profile()
    assert prof.edition == deid_mod.BASIC_PROFILE_EDITION
    assert len(prof.exact) > 600  # the whole table, not a hand-picked list
    assert prof.action(0x0040A730) == "D" and prof.action(0x04000564) == "Z" and prof.action(0x04000563) == "D"
    assert prof.action(0x00180010) == "Z/D" and prof.action(0x60024000) == "X" and prof.action(0x601E3000) == "X"
    assert prof.action(0x00080018) == "U" and prof.action(0x00081140) == "X/Z/U*"
    assert prof.action(0x00280010) is None  # Rows: not listed, kept
