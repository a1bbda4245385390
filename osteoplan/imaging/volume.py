"""The CT volume every stage plans on: a HU array with an exact index -> LPS affine.

Conventions (used everywhere in osteoplan)
-----------------------------------------
* ``array`` is indexed ``(k, j, i)`` = (slice, row, column), float32 Hounsfield units.
* ``affine`` is a 4x4 matrix mapping a homogeneous **array index in array order**
  ``(k, j, i, 1)`` to DICOM patient coordinates LPS in millimetres:
  ``[x, y, z, 1]^T = affine @ [k, j, i, 1]^T``.
  Column 0 is the slice step vector, column 1 the row step (down the rows of an image, i.e.
  DICOM ImageOrientationPatient column direction times PixelSpacing[0]), column 2 the column
  step (along a row: IOP row direction times PixelSpacing[1]), column 3 the position of the
  first voxel's centre (ImagePositionPatient of the first slice after sorting).
  This is the same convention as :class:`highdicom.Volume`.
* NIfTI is RAS: a DICOM/LPS point (x, y, z) is (-x, -y, z) in NIfTI world coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from osteoplan.errors import InputError

#: LPS <-> RAS flip, applied on the left of an affine.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: HU used outside the field of view when sampling (air).
AIR_HU = -1024.0


@dataclass(frozen=True)
class AcquisitionInfo:
    """Non-identifying acquisition metadata (every field optional).

    Attributes
    ----------
    modality : str | None
        DICOM Modality, e.g. ``"CT"``.
    kernel : str | None
        ConvolutionKernel, e.g. ``"BONE"``.
    kvp : float | None
        Peak kilovoltage (kVp).
    contrast : bool | None
        True when ContrastBolusAgent (or the user) says contrast was given, False when the
        series says none, None when unknown.
    series_description : str | None
        SeriesDescription (free text, checked for identifiers by the reader).
    series_uid : str | None
        SeriesInstanceUID (pseudonymised when the volume was read with ``deidentify=True``).
    study_uid : str | None
        StudyInstanceUID (same rule).
    frame_of_reference_uid : str | None
        FrameOfReferenceUID (same rule).
    gantry_tilt_deg : float | None
        Gantry tilt measured from the slice positions (not the tag), when it was corrected.
    source_format : str | None
        ``"dicom"``, ``"dicom-enhanced"``, ``"nifti"`` or ``"nrrd"``.
    """

    modality: str | None = None
    kernel: str | None = None
    kvp: float | None = None
    contrast: bool | None = None
    series_description: str | None = None
    series_uid: str | None = None
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    gantry_tilt_deg: float | None = None
    source_format: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D CT volume in Hounsfield units with an exact index -> LPS (mm) affine.

    Parameters
    ----------
    array : numpy.ndarray, shape (K, J, I)
        HU values indexed (slice, row, column); stored as float32.
    affine : numpy.ndarray, shape (4, 4)
        Maps ``(k, j, i, 1)`` to LPS millimetres (see module docstring).
    info : AcquisitionInfo
        Non-identifying acquisition metadata.
    warnings : tuple[str, ...]
        What the reader noticed and corrected or tolerated (duplicates dropped, tilt
        resampled, files skipped...), as English sentences in the Python API's words. Never
        contains identifying data (no file name).
    reader_notes : tuple[ReaderNote, ...]
        The same for gaps interpolated, files skipped and the series chosen, as data
        (:class:`osteoplan.imaging.reader_notes.ReaderNote`: kind, LPS positions in mm, counts);
        each one's English sentence is also in ``warnings``. Faces write them from the data.

    Raises
    ------
    InputError
        If the array is not 3D, the affine is not 4x4 or is singular.
    """

    array: np.ndarray
    affine: np.ndarray
    info: AcquisitionInfo = field(default_factory=AcquisitionInfo)
    warnings: tuple[str, ...] = ()
    reader_notes: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise InputError(f"A CT volume must be 3D; got an array with {arr.ndim} dimensions.")
        aff = np.asarray(self.affine, dtype=np.float64)
        if aff.shape != (4, 4):
            raise InputError(f"A volume affine must be 4x4; got shape {aff.shape}.")
        if abs(np.linalg.det(aff[:3, :3])) < 1e-9:
            raise InputError("The volume affine is singular (zero spacing or parallel axes); check the geometry tags.")
        if arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "affine", aff)
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "reader_notes", tuple(self.reader_notes))

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (K, J, I) = (slices, rows, columns)."""
        return tuple(int(s) for s in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel spacing along (k, j, i) in mm, shape (3,)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def direction(self) -> np.ndarray:
        """Unit LPS direction of each array axis as columns, shape (3, 3): column a is axis a."""
        return self.affine[:3, :3] / self.spacing_mm

    @property
    def origin_mm(self) -> np.ndarray:
        """LPS position (mm) of voxel (0, 0, 0), shape (3,)."""
        return self.affine[:3, 3].copy()

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (cm^3)."""
        return float(abs(np.linalg.det(self.affine[:3, :3])) / 1000.0)

    def index_to_world(self, index_kji: np.ndarray) -> np.ndarray:
        """Map array indices (..., 3) in (k, j, i) order to LPS mm (..., 3). Fractional indices allowed."""
        idx = np.asarray(index_kji, dtype=np.float64)
        return idx @ self.affine[:3, :3].T + self.affine[:3, 3]

    def world_to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """Map LPS mm points (..., 3) to fractional array indices (..., 3) in (k, j, i) order."""
        pts = np.asarray(points_lps, dtype=np.float64)
        inv = np.linalg.inv(self.affine)
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def contains(self, points_lps: np.ndarray) -> np.ndarray:
        """Boolean mask (...,) of points whose nearest voxel lies inside the array."""
        idx = np.rint(self.world_to_index(points_lps))
        shp = np.asarray(self.shape)
        return np.all((idx >= 0) & (idx <= shp - 1), axis=-1)

    def bounds_lps_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS bounding box (min, max) of the voxel centres, each shape (3,)."""
        K, J, I = self.shape
        corners = np.array([[k, j, i] for k in (0, K - 1) for j in (0, J - 1) for i in (0, I - 1)], float)
        w = self.index_to_world(corners)
        return w.min(axis=0), w.max(axis=0)

    # ------------------------------------------------------------------ sampling
    def sample(self, points_lps: np.ndarray, order: int = 1, fill_hu: float = AIR_HU) -> np.ndarray:
        """Interpolate HU at LPS points.

        Parameters
        ----------
        points_lps : array (..., 3)
            LPS millimetres.
        order : int
            1 = trilinear (default), 0 = nearest neighbour, 3 = cubic spline.
        fill_hu : float
            Value outside the volume (air, -1024 HU, by default).

        Returns
        -------
        numpy.ndarray, shape (...)
            HU values (float32).
        """
        from scipy.ndimage import map_coordinates

        pts = np.asarray(points_lps, dtype=np.float64)
        idx = self.world_to_index(pts.reshape(-1, 3))
        out = map_coordinates(self.array, idx.T, order=order, mode="constant", cval=fill_hu, prefilter=order > 1)
        return out.reshape(pts.shape[:-1]).astype(np.float32)

    def resample(
        self,
        affine: np.ndarray,
        shape: tuple[int, int, int],
        order: int = 1,
        fill_hu: float = AIR_HU,
    ) -> "Volume":
        """Resample onto another grid (same LPS world) given its affine and shape (K, J, I).

        Parameters
        ----------
        affine : array (4, 4)
            Target index (k, j, i) -> LPS mm.
        shape : tuple of 3 ints
            Target array shape (K, J, I).
        order : int
            Interpolation order (1 trilinear, 0 nearest).
        fill_hu : float
            HU outside the source volume.
        """
        from scipy.ndimage import affine_transform

        affine = np.asarray(affine, dtype=np.float64)
        # target index -> world -> source index
        m = np.linalg.inv(self.affine) @ affine
        out = affine_transform(
            self.array, m[:3, :3], offset=m[:3, 3], output_shape=tuple(int(s) for s in shape),
            order=order, mode="constant", cval=fill_hu, prefilter=order > 1,
        )
        return replace(self, array=out.astype(np.float32), affine=affine)

    def resample_to_spacing(self, spacing_mm: float | tuple[float, float, float], order: int = 1) -> "Volume":
        """Resample to a new voxel spacing (mm, along k, j, i) keeping orientation and extent."""
        sp = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,))
        old_sp = self.spacing_mm
        extent = (np.asarray(self.shape) - 1) * old_sp
        new_shape = tuple(int(np.floor(e / s + 1e-6)) + 1 for e, s in zip(extent, sp))
        aff = self.affine.copy()
        aff[:3, :3] = self.direction * sp
        return self.resample(aff, new_shape, order=order)

    # ------------------------------------------------------------------ conversions
    def nifti_affine_ras(self) -> np.ndarray:
        """4x4 NIfTI affine mapping NIfTI voxel (i, j, k) -- i.e. array transposed -- to RAS mm."""
        perm = np.zeros((4, 4))
        perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0  # (i, j, k) -> (k, j, i)
        return LPS_TO_RAS @ self.affine @ perm

    def to_nifti(self, dtype: Any = np.int16):
        """A nibabel Nifti1Image (RAS, data axes (i, j, k)); HU stored with scl_slope 1, scl_inter 0."""
        import nibabel as nib

        data = np.transpose(self.array, (2, 1, 0))
        if np.issubdtype(np.dtype(dtype), np.integer):
            data = np.rint(data)
        img = nib.Nifti1Image(data.astype(dtype), self.nifti_affine_ras())
        img.header.set_slope_inter(1.0, 0.0)
        img.header.set_qform(self.nifti_affine_ras(), code=1)
        img.header.set_sform(self.nifti_affine_ras(), code=1)
        img.header.set_xyzt_units("mm")
        return img

    @classmethod
    def from_nifti(cls, img: Any, info: AcquisitionInfo | None = None) -> "Volume":
        """Build a Volume from a nibabel image (RAS world, data (i, j, k[, 1]))."""
        data = np.asarray(img.get_fdata(dtype=np.float32))
        if data.ndim == 4 and data.shape[3] == 1:
            data = data[..., 0]
        if data.ndim != 3:
            raise InputError(f"A CT NIfTI must be 3D; this one has shape {data.shape}.")
        perm = np.zeros((4, 4))
        perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0  # (k, j, i) -> (i, j, k)
        affine_lps = LPS_TO_RAS @ np.asarray(img.affine, dtype=np.float64) @ perm
        return cls(np.transpose(data, (2, 1, 0)), affine_lps, info or AcquisitionInfo(source_format="nifti"))

    def to_sitk(self):
        """A SimpleITK image (LPS, ITK index order (i, j, k)) of this volume."""
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(self.array)  # numpy (k, j, i) -> ITK (i, j, k)
        sp = self.spacing_mm
        img.SetSpacing((float(sp[2]), float(sp[1]), float(sp[0])))
        img.SetOrigin(tuple(float(v) for v in self.origin_mm))
        d = self.direction
        img.SetDirection(tuple(float(v) for v in np.stack([d[:, 2], d[:, 1], d[:, 0]], axis=1).ravel()))
        return img

    @classmethod
    def from_sitk(cls, img: Any, info: AcquisitionInfo | None = None) -> "Volume":
        """Build a Volume from a SimpleITK image (ITK images are LPS)."""
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(img).astype(np.float32)
        sp = np.asarray(img.GetSpacing(), dtype=np.float64)  # (i, j, k)
        d = np.asarray(img.GetDirection(), dtype=np.float64).reshape(3, 3)  # columns i, j, k
        aff = np.eye(4)
        aff[:3, 0] = d[:, 2] * sp[2]
        aff[:3, 1] = d[:, 1] * sp[1]
        aff[:3, 2] = d[:, 0] * sp[0]
        aff[:3, 3] = img.GetOrigin()
        return cls(arr, aff, info or AcquisitionInfo())

    def with_array(self, array: np.ndarray) -> "Volume":
        """Same geometry and metadata, other voxel values (shape must match)."""
        if tuple(array.shape) != self.shape:
            raise InputError(f"Array shape {array.shape} does not match the volume {self.shape}.")
        return replace(self, array=array)

    def summary(self) -> dict[str, Any]:
        """Plain-JSON geometry summary (shape, spacing, origin, direction)."""
        return {
            "shape_kji": list(self.shape),
            "spacing_kji_mm": [round(float(s), 6) for s in self.spacing_mm],
            "origin_lps_mm": [round(float(v), 6) for v in self.origin_mm],
            "direction_columns_kji": np.round(self.direction, 6).tolist(),
            "info": self.info.to_dict(),
            "warnings": list(self.warnings),
            "reader_notes": [n.to_dict() for n in self.reader_notes],
        }


def axis_aligned_affine(spacing_kji_mm: tuple[float, float, float],
                        origin_lps_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """Affine (k, j, i) -> LPS mm of an axial grid: k along +S (feet to head), j along +P, i along +L.

    Parameters
    ----------
    spacing_kji_mm : (slice, row, column) spacing in mm.
    origin_lps_mm : LPS position of voxel (0, 0, 0).
    """
    sk, sj, si = spacing_kji_mm
    aff = np.eye(4)
    aff[:3, 0] = (0.0, 0.0, sk)
    aff[:3, 1] = (0.0, sj, 0.0)
    aff[:3, 2] = (si, 0.0, 0.0)
    aff[:3, 3] = origin_lps_mm
    return aff
