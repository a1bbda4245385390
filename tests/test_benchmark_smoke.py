"""Every script under benchmarks/ runs on a tiny input, so that a broken import or call fails CI.

Each test runs the script as ``python benchmarks/<script>.py`` in a fresh, time-bounded process with the smallest
options it has, and checks it returns 0 and prints its comparison table (the obvious alternative in the same run). The
figures themselves are not asserted here (no timing assertions in tests): the scripts are run in full by hand
for the notes. Real-data scripts skip when ../shared/data is absent.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
DATA = ROOT.parent / "shared" / "data"

#: Every benchmark script and the test that runs it (a new script without a smoke test fails test_every_script_has_a_smoke_test).
SMOKE_TESTS = {
    "bench_adjust.py": "test_bench_adjust",
    "bench_drr.py": "test_bench_drr",
    "bench_planner.py": "test_bench_planner",
    "bench_plan_stages.py": "test_bench_plan_stages",
    "bench_read_dicom.py": "test_bench_read_dicom",
    "dicom_mutation.py": "tests/imaging/test_dicom_mutation.py::test_mutation_corpus_representative_subset",
    "load_web.py": "test_load_web",
    "openkbp_airway.py": "test_openkbp_airway",
    "openkbp_anatomy.py": "test_openkbp_anatomy",
    "openkbp_c2.py": "test_openkbp_c2",
    "openkbp_mandible.py": "test_openkbp_mandible",
    "openkbp_plans.py": "tests/test_benchmark_openkbp_plans.py::test_openkbp_plans_runs_on_two_cases",
    "plan_real_cases.py": "test_plan_real_cases",
    "vertebroplasty_real.py": "tests/test_benchmark_vertebroplasty_real.py::test_vertebroplasty_real_smoke",
    "bench_verify.py": "tests/verification/test_bench_and_cli.py::test_benchmark_trials_and_table",
    "bench_verify_cover.py": "tests/verification/test_coverage_bound.py::test_bench_verify_cover_smoke",
    "verify_tip_profiles.py": "test_verify_tip_profiles_coverage",
}

needs_openkbp = pytest.mark.skipif(not (DATA / "openkbp" / "pt_100").is_dir(),
                                   reason="../shared/data/openkbp is absent (real-data benchmarks run in CI)")
needs_cthead = pytest.mark.skipif(not (DATA / "cthead" / "ct.nii.gz").is_file(),
                                  reason="../shared/data/cthead is absent (real-data benchmarks run in CI)")


def _load(name: str):
    path = BENCH / name
    spec = importlib.util.spec_from_file_location(f"bench_smoke_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _run(name: str, argv: list[str], timeout_s: float = 480.0) -> str:
    """Run ``python benchmarks/<name> argv`` in a fresh process, as a user would; returns its standard output.

    A fresh process, not the test process: a script pins numba/BLAS threads to one when run as a script, and it
    must not inherit the test process's thread pools, numba thread masks or caches left by earlier tests. Bounded by
    *timeout_s*: a script still running then gets SIGABRT, on which ``-X faulthandler`` prints every thread's Python
    stack, then its whole process group (the servers and ``osteoplan plan`` processes it started) is killed, and the
    test fails with that stack instead of stalling the suite.
    """
    env = {**os.environ, "OSTEOPLAN_QUIET": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:  # files: orphans hold no pipe
        p = subprocess.Popen([sys.executable, "-X", "faulthandler", str(BENCH / name), *argv], cwd=str(ROOT),
                             env=env, stdout=fo, stderr=fe, text=True, start_new_session=True)
        try:
            p.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
            p.send_signal(signal.SIGABRT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever the script left running in its session (a uvicorn server, a plan subprocess)
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if timed_out:
        pytest.fail(f"{name} did not finish in {timeout_s:.0f} s; its stacks and output:\n{err[-6000:]}\n{out[-1500:]}")
    assert p.returncode == 0, f"{name} exited {p.returncode}: {out[-1500:]} {err[-1500:]}"
    return out


def test_every_script_has_a_smoke_test():
    scripts = sorted(p.name for p in BENCH.glob("*.py"))
    assert scripts == sorted(SMOKE_TESTS), "add a smoke test for the new benchmark script to SMOKE_TESTS"
    here = sys.modules[__name__]
    for script, test in SMOKE_TESTS.items():
        if "::" in test:
            file, func = test.split("::")
            assert f"def {func}(" in (ROOT / file).read_text(), test
        else:
            assert callable(getattr(here, test)), test


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory) -> Path:
    """The neck phantom at 2 mm (a small CT with a C2 and every structure) as NIfTI."""
    from osteoplan.anatomy.phantom import PhantomParams, make_phantom
    from osteoplan.export import save_ct_nifti

    path = tmp_path_factory.mktemp("phantom") / "ct.nii.gz"
    save_ct_nifti(path, make_phantom(PhantomParams(spacing_mm=2.0)).volume)
    return path


@needs_cthead
def test_bench_drr():
    out = _run("bench_drr.py", ["--pixels", "16", "--step", "2", "--repeat", "1", "--views", "lateral"])
    assert "osteoplan Joseph (prepared)" in out and "SimpleITK Resample depth planes" in out
    assert "osteoplan former fixed-step" in out


@pytest.mark.slow
def test_bench_planner(phantom_ct):
    out = _run("bench_planner.py", ["--ct", str(phantom_ct), "--loop-subset", "4", "--min-candidates", "2000",
                                    "--max-candidates", "2000", "--no-plan", "--search-repeats", "1"])
    assert "| numba kernel |" in out and "Python loop" in out and "max |clearance difference|" in out
    assert "| exhaustive kernel s |" in out
    assert "c2-dens-anterior: identical best plans: yes" in out and "c2-dens-lateral: identical best plans: yes" in out


def test_bench_adjust():
    """The evaluate endpoint and the re-build-per-move alternative on a 2 mm phantom, a few moves (no CThead)."""
    out = _run("bench_adjust.py", ["--moves", "4", "--alt-moves", "1", "--no-cthead", "--phantom-spacing", "2.0",
                                   "--angle-step", "3"])
    assert "evaluate endpoint through the FastAPI TestClient" in out and "re-building the fields per move" in out
    assert out.splitlines()[-3].startswith("phantom")


@pytest.mark.slow
def test_bench_plan_stages(phantom_ct):
    """The stage table of `plan --no-report` on the 2 mm phantom, this checkout against itself as the reference."""
    out = _run("bench_plan_stages.py", ["--ct", str(phantom_ct), "--no-exports", "--reference", str(ROOT)])
    assert "| this checkout CPU s | reference CPU s |" in out
    assert "| building the anatomy" in out and "| . classical segmentation |" in out
    assert "| process (start-up + command) |" in out


def test_bench_read_dicom(tmp_path):
    """On a tiny synthetic series (12 slices of 24 x 20; both readers must agree voxel for voxel)."""
    from osteoplan.imaging.synth import write_series

    write_series(tmp_path / "series", phi=False)
    out = _run("bench_read_dicom.py", ["--folder", str(tmp_path / "series"), "--repeats", "1"])
    assert "SimpleITK ImageSeriesReader" in out and "identical voxels and geometry: yes" in out


@pytest.mark.slow
def test_load_web(tmp_path):
    out = _run("load_web.py", ["--cases", "5", "--clients", "2", "--requests", "4", "--seconds", "5",
                               "--db", str(tmp_path / "load.db")])
    assert "| scenario | clients |" in out and "vs 1 client" in out


@pytest.mark.slow
@needs_openkbp
def test_openkbp_airway():
    out = _run("openkbp_airway.py", ["--cases", "pt_100"])
    assert "pt_100" in out and "alt ovl" in out


@pytest.mark.slow
@needs_openkbp
def test_openkbp_anatomy():
    out = _run("openkbp_anatomy.py", ["--cases", "pt_100"])
    assert "pt_100" in out and "naive%" in out


@pytest.mark.slow
@needs_openkbp
def test_openkbp_c2():
    out = _run("openkbp_c2.py", ["--cases", "pt_100"])
    assert "pt_100" in out


@pytest.mark.slow
@needs_openkbp
def test_openkbp_mandible():
    out = _run("openkbp_mandible.py", ["--cases", "pt_100"])
    assert "pt_100" in out and "| alternative: largest bone component 45 mm in front of the canal |" in out


@pytest.mark.slow
@needs_openkbp
def test_plan_real_cases():
    out = _run("plan_real_cases.py", ["--openkbp", "1", "--no-cthead"])
    assert out.count("| pt_1 |") == 1 and "alternative: of the 1 cases with provided masks" in out


def test_verify_tip_profiles_coverage(tmp_path):
    """The coverage figure of verify_tip_profiles.py from two small bench_verify --rows-json files (the profile
    figure rebuilds CThead trials: too slow for a smoke test; its functions are imported here all the same)."""
    import json

    rows = [{"seed": k, "tip_uncertainty_mm": 0.2 + 0.1 * k, "tip_along_error_mm": (-1) ** k * 0.1 * k,
             "diameter_mm": 1.0 + 0.5 * k, "tip_error_mm": 0.1 * k} for k in range(4)]
    files = []
    for tag in ("before", "after"):
        f = tmp_path / f"{tag}.json"
        f.write_text(json.dumps({"cthead": rows + [{"seed": 9, "refused": "No metal instrument"}]}))
        files.append(str(f))
    out = tmp_path / "coverage.png"
    mod = _load("verify_tip_profiles.py")  # imported only: its profile figure rebuilds CThead trials
    assert callable(mod.trial_cts) and callable(mod.plot_profiles)
    _run("verify_tip_profiles.py", ["--coverage", str(out), "--runs", ",".join(files)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
