"""Optional TotalSegmentator backend (Wasserthal et al., Radiology: Artificial Intelligence 2023;5:e230024).

Used only when the ``TotalSegmentator`` command and its model weights are installed (osteoplan
does not install or download them). Two tasks are supported:

* ``total`` with a ROI subset of what osteoplan plans with (cervical vertebrae, spinal cord,
  trachea, oesophagus, common carotid arteries, skull);
* ``headneck_bones_vessels`` (internal carotid arteries, internal jugular veins, laryngeal air,
  hyoid, thyroid and cricoid cartilage, styloid processes, zygomatic arches).

TotalSegmentator writes one ``<class>.nii.gz`` per structure into its output folder;
:func:`map_outputs` maps those file names to osteoplan's vocabulary and :func:`load_outputs`
loads them onto the CT with :func:`osteoplan.anatomy.loaders.load_nifti_folder`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from osteoplan.anatomy.labelmap import LabelMap, canonical_name
from osteoplan.errors import AnatomyError, DependencyError, InputError, safe_path
from osteoplan.imaging.volume import Volume

__all__ = [
    "EXECUTABLE",
    "TASKS",
    "TOTAL_ROI_SUBSET",
    "HEADNECK_BONES_VESSELS_CLASSES",
    "is_available",
    "weights_dir",
    "build_command",
    "run",
    "map_outputs",
    "load_outputs",
    "run_totalsegmentator",
]

#: The command-line entry point installed by the ``TotalSegmentator`` package.
EXECUTABLE = "TotalSegmentator"

#: Classes of the ``total`` task that osteoplan uses (TotalSegmentator v2 names).
TOTAL_ROI_SUBSET: tuple[str, ...] = (
    "vertebrae_C1", "vertebrae_C2", "vertebrae_C3", "vertebrae_C4", "vertebrae_C5", "vertebrae_C6", "vertebrae_C7",
    "spinal_cord", "trachea", "esophagus", "common_carotid_artery_left", "common_carotid_artery_right", "skull",
)

#: Classes of the ``headneck_bones_vessels`` task (TotalSegmentator v2).
HEADNECK_BONES_VESSELS_CLASSES: tuple[str, ...] = (
    "larynx_air", "thyroid_cartilage", "hyoid", "cricoid_cartilage", "zygomatic_arch_right", "zygomatic_arch_left",
    "styloid_process_right", "styloid_process_left", "internal_carotid_artery_right", "internal_carotid_artery_left",
    "internal_jugular_vein_right", "internal_jugular_vein_left",
)

#: Supported tasks: whether ``--fast`` and ``--roi_subset`` are allowed.
TASKS: dict[str, dict[str, bool]] = {
    "total": {"fast": True, "roi_subset": True},
    "headneck_bones_vessels": {"fast": False, "roi_subset": False},
}

_DEVICES = ("cpu", "gpu", "mps")


def weights_dir() -> Path:
    """Where TotalSegmentator keeps its weights: ``$TOTALSEG_WEIGHTS_PATH``, else ``$TOTALSEG_HOME_DIR/nnunet/results``
    (default home ``~/.totalsegmentator``)."""
    env = os.environ.get("TOTALSEG_WEIGHTS_PATH")
    if env:
        return Path(env)
    home = Path(os.environ.get("TOTALSEG_HOME_DIR", Path.home() / ".totalsegmentator"))
    return home / "nnunet" / "results"


def _find_executable(executable: str | None = None) -> str | None:
    exe = executable or EXECUTABLE
    if os.path.sep in exe:
        return exe if os.access(exe, os.X_OK) else None
    return shutil.which(exe)


#: nnU-Net datasets (weight folders ``Dataset<ID>_<name>`` under :func:`weights_dir`) each task runs,
#: keyed by (task, fast), as in TotalSegmentator 2's python_api: ``total`` is five part models at
#: 1.5 mm (291-295), its ``--fast`` model one at 3 mm (297); ``headneck_bones_vessels`` is 776.
TASK_DATASETS: dict[tuple[str, bool], tuple[int, ...]] = {
    ("total", False): (291, 292, 293, 294, 295),
    ("total", True): (297,),
    ("headneck_bones_vessels", False): (776,),
}


def missing_weights(task: str = "total", fast: bool = False) -> list[int]:
    """Dataset IDs of *task* (see :data:`TASK_DATASETS`) without a weight folder in :func:`weights_dir`.

    A folder counts when it is named ``Dataset<ID>`` or ``Dataset<ID>_...`` (its content is not
    checked: TotalSegmentator itself reports damaged weights when it runs).

    Raises
    ------
    InputError
        Unknown task, or ``fast`` on a task without a fast model.
    """
    key = (task, bool(fast and TASKS.get(task, {}).get("fast", False)))
    if task not in TASKS:
        raise InputError(f"Unsupported TotalSegmentator task '{task}'; use one of: {', '.join(TASKS)}.")
    d = weights_dir()
    names = [p.name for p in d.iterdir() if p.is_dir()] if d.is_dir() else []
    return [i for i in TASK_DATASETS[key]
            if not any(n == f"Dataset{i}" or n.startswith(f"Dataset{i}_") for n in names)]


def is_available(require_weights: bool = True, executable: str | None = None,
                 tasks: Sequence[str] | None = None, fast: bool = False) -> bool:
    """True when the TotalSegmentator command is on the PATH and, by default, the weights of *tasks*
    (all of :data:`TASKS` when ``None``) are installed (see :func:`missing_weights`)."""
    if _find_executable(executable) is None:
        return False
    if not require_weights:
        return True
    return not any(missing_weights(t, fast) for t in (TASKS if tasks is None else tasks))


def build_command(ct_path: str | os.PathLike, out_dir: str | os.PathLike, task: str = "total",
                  roi_subset: Sequence[str] | None = None, fast: bool = False, device: str = "cpu",
                  executable: str | None = None) -> list[str]:
    """Argument list of a TotalSegmentator run (no shell involved).

    Parameters
    ----------
    ct_path : path
        CT as NIfTI (or a DICOM folder, which TotalSegmentator also reads).
    out_dir : path
        Output folder (one ``<class>.nii.gz`` per structure).
    task : str
        ``"total"`` or ``"headneck_bones_vessels"``.
    roi_subset : sequence of str, optional
        Classes to predict, ``total`` only; ``None`` uses :data:`TOTAL_ROI_SUBSET` for ``total``.
        An empty sequence predicts every class.
    fast : bool
        3 mm low-resolution model (``total`` only).
    device : str
        ``"cpu"``, ``"gpu"``, ``"gpu:N"`` or ``"mps"``.
    executable : str, optional
        Command to run (default ``TotalSegmentator``).

    Returns
    -------
    list of str

    Raises
    ------
    InputError
        Unknown task or device, ``fast``/``roi_subset`` on a task that does not support them,
        or a ROI name that is not a class of the task.
    """
    if task not in TASKS:
        raise InputError(f"Unsupported TotalSegmentator task '{task}'; use one of: {', '.join(TASKS)}.")
    dev = str(device)
    if not (dev in _DEVICES or (dev.startswith("gpu:") and dev[4:].isdigit())):
        raise InputError(f"Unknown device '{device}'; use cpu, gpu, gpu:N or mps.")
    cmd = [executable or EXECUTABLE, "-i", str(ct_path), "-o", str(out_dir), "--task", task]
    if task == "total":
        rois = list(TOTAL_ROI_SUBSET if roi_subset is None else roi_subset)
        bad = [r for r in rois if not r.replace("_", "").isalnum()]
        if bad:
            raise InputError(f"Invalid ROI name(s): {', '.join(bad)}.")
        if rois:
            cmd += ["--roi_subset", *rois]
    elif roi_subset:
        raise InputError(f"--roi_subset is only available for the 'total' task, not '{task}'.")
    if fast:
        if not TASKS[task]["fast"]:
            raise InputError(f"The fast model does not exist for the '{task}' task; run it without --fast.")
        cmd.append("--fast")
    cmd += ["--device", dev]
    return cmd


def run(ct_path: str | os.PathLike, out_dir: str | os.PathLike, task: str = "total",
        roi_subset: Sequence[str] | None = None, fast: bool = False, device: str = "cpu",
        executable: str | None = None, require_weights: bool = True, timeout_s: float | None = 3600.0) -> dict[str, Path]:
    """Run TotalSegmentator as a subprocess and return its outputs mapped to the vocabulary.

    Returns
    -------
    dict
        ``{canonical name: mask path}`` (see :func:`map_outputs`).

    Raises
    ------
    DependencyError
        TotalSegmentator or its weights are not installed.
    AnatomyError
        The run failed or timed out, or produced no mask.
    """
    exe = _find_executable(executable)
    if exe is None:
        raise DependencyError(
            "TotalSegmentator is not installed; osteoplan then uses its classical segmentation. To use it, "
            "install it in this environment (pip install TotalSegmentator) and download its weights "
            "(totalseg_download_weights -t total; -t headneck_bones_vessels)."
        )
    missing = missing_weights(task, fast) if require_weights else []
    if missing:
        raise DependencyError(
            f"TotalSegmentator is installed but the weights of its '{task}' task "
            f"({', '.join(f'Dataset{i}' for i in missing)}) were not found in {weights_dir()}; download them with "
            f"totalseg_download_weights -t {task} (or set TOTALSEG_HOME_DIR)."
        )
    ct = Path(ct_path)
    if not ct.exists():
        raise InputError(f"CT not found: {safe_path(ct)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = build_command(ct, out, task=task, roi_subset=roi_subset, fast=fast, device=device, executable=exe)
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise AnatomyError(f"TotalSegmentator ({task}) did not finish within {timeout_s:.0f} s; try --fast or a GPU.") from None
    if proc.returncode != 0:
        raise AnatomyError(
            f"TotalSegmentator ({task}) failed with exit code {proc.returncode}; run it by hand to see its message "
            "(missing licence for this task, out of memory, unreadable CT...)."
        )
    found = map_outputs(out)
    if not found:
        raise AnatomyError(f"TotalSegmentator ({task}) wrote no mask that osteoplan can use.")
    return found


def map_outputs(out_dir: str | os.PathLike, include_unknown: bool = False) -> dict[str, Path]:
    """Map TotalSegmentator output files to canonical structure names.

    Parameters
    ----------
    out_dir : path
        A TotalSegmentator output folder (``<class>.nii.gz`` files).
    include_unknown : bool
        Also return classes outside osteoplan's vocabulary (e.g. ``hyoid``) under their own name.

    Returns
    -------
    dict
        ``{canonical name: path}``, e.g. ``larynx_air.nii.gz`` -> ``"larynx"``. When several files
        map to one name, the file whose stem equals the canonical name wins; use
        :func:`load_outputs` to union them instead.
    """
    d = Path(out_dir)
    if not d.is_dir():
        raise InputError(f"TotalSegmentator output folder not found: {safe_path(d, 'folder')}.")
    out: dict[str, Path] = {}
    for f in sorted(d.iterdir()):
        n = f.name
        if not f.is_file() or not n.endswith((".nii.gz", ".nii")):
            continue
        stem = n[: -len(".nii.gz")] if n.endswith(".nii.gz") else n[: -len(".nii")]
        canon = canonical_name(stem)
        if canon is None:
            if include_unknown:
                out[stem] = f
            continue
        if canon in out and out[canon].name.startswith(canon + "."):
            continue
        out[canon] = f
    return out


def load_outputs(out_dir: str | os.PathLike, volume: Volume, warnings: list[str] | None = None) -> LabelMap:
    """Load a TotalSegmentator output folder onto the CT (sources relabelled ``totalsegmentator:<file>``)."""
    from osteoplan.anatomy.loaders import load_nifti_folder

    lm = load_nifti_folder(out_dir, volume, warnings=warnings)
    lm.sources = {k: v.replace("provided:", "totalsegmentator:") for k, v in lm.sources.items()}
    return lm


def run_totalsegmentator(volume: Volume, tasks: Sequence[str] = ("total", "headneck_bones_vessels"),
                         fast: bool = False, device: str = "cpu", executable: str | None = None,
                         require_weights: bool = True, warnings: list[str] | None = None) -> LabelMap:
    """Segment a CT with TotalSegmentator and return the masks on the CT grid.

    The volume is written to a temporary NIfTI, each task is run into its own temporary
    folder (``total`` with :data:`TOTAL_ROI_SUBSET`), and the outputs are loaded with
    :func:`load_outputs` (sources ``totalsegmentator:<file>``). Temporary files are removed.

    Raises
    ------
    DependencyError
        TotalSegmentator or its weights are not installed (checked before anything is written).
    AnatomyError
        A run failed.
    """
    import tempfile

    import nibabel as nib

    if _find_executable(executable) is None:
        run("", "", executable=executable, require_weights=require_weights)  # same message as run()
    for task in tasks:
        if require_weights and missing_weights(task, fast):
            run("", "", task=task, fast=fast, executable=executable)  # same message as run()
    lm = LabelMap(volume)
    with tempfile.TemporaryDirectory(prefix="osteoplan-ts-") as tmp:
        ct = Path(tmp) / "ct.nii.gz"
        nib.save(volume.to_nifti(), str(ct))
        for task in tasks:
            out = Path(tmp) / task
            run(ct, out, task=task, fast=fast and TASKS.get(task, {}).get("fast", False), device=device,
                executable=executable, require_weights=require_weights)
            part = load_outputs(out, volume, warnings=warnings)
            for n in part.names():
                if not lm.has(n):
                    lm.add(n, part.get(n), part.sources[n])
    return lm
