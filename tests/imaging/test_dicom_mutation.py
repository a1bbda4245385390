"""The DICOM mutation corpus (benchmarks/dicom_mutation.py) on the real CThead neck crop series: 0 defects.

A defect is an uncaught exception, a run over the time or memory limit, a silent HU or geometry change beyond
tolerance, NaN/inf in a volume, a multi-line error, an ``info --json`` report that is not JSON or too large, or a
path / the patient-like folder name in any output. See the benchmark's docstring for the classes and outcomes.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.realdata

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT.parent / "shared" / "data" / "cthead" / "dicom-pitfalls" / "shuffled"


def _bench():
    if not SOURCE.is_dir():
        pytest.skip("../shared/data/cthead/dicom-pitfalls/shuffled is absent (real data not on this machine)")
    spec = importlib.util.spec_from_file_location("dicom_mutation", ROOT / "benchmarks" / "dicom_mutation.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _assert_no_defect(results, n_expected, declared=True):
    assert len(results) == n_expected
    outcomes = Counter(r["outcome"] for r in results)
    defects = [f"{r['mclass']} / {r['name']} / {r['placement']} k={r.get('slice')}: {r['detail']}"
               for r in results if r["outcome"] in ("DEFECT", "skipped")]
    assert not defects, "\n".join(defects[:20])
    # the corpus exercises every outcome a correct reader may give
    assert outcomes["same"] > 0 and outcomes["same_warned"] > 0 and outcomes["error"] > 0
    if declared:  # a valid other rescale on one slice: the HU it states (the subset may hold none)
        assert outcomes["declared"] > 0


def test_mutation_corpus_representative_subset():
    dm = _bench()
    src = dm.load_source(SOURCE)
    muts = dm.representative_subset(dm.build_corpus(src), 250)
    assert len({m.mclass for m in muts}) == 11 and 240 <= len(muts) <= 300
    _assert_no_defect(dm.run_corpus(muts, src, progress=False), len(muts), declared=False)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # >= 2000 read attempts in forked children: over 10 min when the machine is loaded
def test_mutation_corpus_full():
    dm = _bench()
    src = dm.load_source(SOURCE)
    muts = dm.build_corpus(src)
    assert len(muts) >= 2000
    _assert_no_defect(dm.run_corpus(muts, src, progress=False), len(muts))
