"""Headers parsed from the first bytes of each file read in one go (dicom_series._header_from_start) give the
dataset pydicom.dcmread(path, defer_size=4096) gives, or the file is parsed as before; nothing is reported twice."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement

from osteoplan.imaging import dicom_series, synth

HEADER_BYTES = 1396  # offset of the pixel data value in the generator's 64 x 64 files (checked below)


def _series(folder, **kw):
    synth.write_series(folder, rows=64, cols=64, n_slices=4, shuffle=False, **kw)
    return sorted(folder.iterdir())


def _spy(monkeypatch, chunk):
    """Set the chunk size; returns the list of (file name, parsed from the chunk?) the scan will fill."""
    monkeypatch.setattr(dicom_series, "HEADER_CHUNK_BYTES", chunk)
    seen = []
    real = dicom_series._header_from_start

    def spy(path, size, messages):
        ds = real(path, size, messages)
        seen.append((path.name, ds is not None))
        return ds

    monkeypatch.setattr(dicom_series, "_header_from_start", spy)
    return seen


def _same_as_file_parse(ds, path, first=None):
    ref = pydicom.dcmread(str(path), defer_size=4096)
    assert list(ds.keys()) == list(ref.keys())
    # the pixel data: deferred (not read), at the same offset -- except in the first file of a series, whose
    # elements were all read by the identifying-value check of the scan
    mine, theirs = (d.get_item(0x7FE00010, keep_deferred=True) for d in (ds, ref))
    if ds is not first:
        assert isinstance(mine, RawDataElement) and mine.value is None
        assert (mine.VR, mine.length, mine.value_tell) == (theirs.VR, theirs.length, theirs.value_tell)
    # every value (the scan has converted some of them: compare converted values)
    assert [(ds[t].VR, ds[t].value) for t in ds.keys()] == [(ref[t].VR, ref[t].value) for t in ref.keys()]
    assert ds.file_meta == ref.file_meta and ds.preamble == ref.preamble
    assert (ds.filename, ds.fileobj_type, ds.buffer, ds.timestamp) == (str(path), open, None, ref.timestamp)
    assert (ds.is_implicit_VR, ds.is_little_endian) == (ref.is_implicit_VR, ref.is_little_endian)


@pytest.mark.parametrize("chunk", [0, 600, 4096, 1 << 20],
                         ids=["no-chunk", "header-cut", "pixels-beyond", "whole-file"])
def test_datasets_and_volume_as_parsed_from_the_file(tmp_path, monkeypatch, chunk):
    files = _series(tmp_path / "s")
    pixels = pydicom.dcmread(str(files[0]), defer_size=4096).get_item(0x7FE00010, keep_deferred=True)
    assert pixels.value_tell == HEADER_BYTES and pixels.value_tell + pixels.length == files[0].stat().st_size
    seen = _spy(monkeypatch, chunk)
    result = dicom_series.scan(tmp_path / "s")
    assert seen == [(f.name, chunk >= 4096) for f in files]
    for ds, path in zip(result.datasets, result.files):
        _same_as_file_parse(ds, path, result.datasets[0])
    vol = dicom_series.read_dicom(tmp_path / "s")
    monkeypatch.setattr(dicom_series, "HEADER_CHUNK_BYTES", 0)
    ref = dicom_series.read_dicom(tmp_path / "s")
    assert np.array_equal(vol.array, ref.array) and np.array_equal(vol.affine, ref.affine)
    assert vol.warnings == ref.warnings


def test_element_after_the_pixel_data_is_kept(tmp_path, monkeypatch):
    """The pixel data does not run to the end of the file: the file is parsed (the trailing element is kept)."""
    files = _series(tmp_path / "s")
    ds = pydicom.dcmread(str(files[1]))
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 16)  # Data Set Trailing Padding, after (7FE0,0010)
    ds.save_as(str(files[1]))
    seen = _spy(monkeypatch, 4096)
    result = dicom_series.scan(tmp_path / "s")
    assert seen == [(f.name, f != files[1]) for f in files]
    assert 0xFFFCFFFC in result.datasets[1]
    _same_as_file_parse(result.datasets[1], files[1], result.datasets[0])


def test_messages_of_a_redone_parse_are_not_repeated(tmp_path, monkeypatch, caplog):
    """A file whose parse warns and whose header is longer than the chunk: pydicom's message is logged as
    often as when the file alone is parsed (the attempt's copy is withdrawn)."""
    files = _series(tmp_path / "s")
    data = files[2].read_bytes()
    # transfer syntax says implicit VR, the data set is explicit: pydicom warns and reads it as explicit
    at = data.index(b"1.2.840.10008.1.2.1\x00")
    files[2].write_bytes(data[:at] + b"1.2.840.10008.1.2\x00\x00\x00" + data[at + 20:])

    def logged(chunk):
        seen = _spy(monkeypatch, chunk)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="osteoplan.imaging.dicom_series"):
            dicom_series.scan(tmp_path / "s")
        return seen[2][1], [r.getMessage() for r in caplog.records if r.name == "osteoplan.imaging.dicom_series"]

    _, alone = logged(0)
    assert any("Expected implicit VR, but found explicit VR" in m for m in alone)
    assert logged(600) == (False, alone)  # header cut by the chunk: attempt withdrawn, file parsed
    assert logged(1 << 20) == (True, alone)  # whole file in the chunk: that parse is used
