"""Medical formats: NIfTI and DICOM volumes in, their segments out as NIfTI/PNG."""

import sys
import types

import numpy as np
import pytest

import cuts_jax
from configs import tiny
from cuts_jax import pixels
from cuts_jax import segmentation
from cuts_jax import train
from cuts_jax import volume as volume_lib
from cuts_jax.io import datasets as data
from cuts_jax.io import medical


def _nibabel():
  return pytest.importorskip("nibabel", reason="nibabel is not installed (the medical extra)")


def _pydicom():
  return pytest.importorskip("pydicom", reason="pydicom is not installed (the medical extra)")


def _smooth_volume(shape, seed):
  """Blobs of a few sizes, so slices have regions to segment."""
  from scipy import ndimage
  noise = np.random.default_rng(seed).random(shape)
  return ndimage.gaussian_filter(noise, 2.0) + 0.5 * ndimage.gaussian_filter(noise, 5.0)


@pytest.fixture(scope="module")
def gray_params(tmp_path_factory):
  """A tiny one-channel model trained on the slices of a synthetic volume."""
  folder = tmp_path_factory.mktemp("volume_run")
  np.savez(folder / "volume.npz", vol=_smooth_volume((32, 32, 4), seed=0))
  config = tiny.get_config()
  config.data.kind = "volume"
  config.data.root = str(folder / "volume.npz")
  config.data.axis = 2
  state = train.train_and_evaluate(config, folder / "workdir")
  params = segmentation.SegmentationParams.from_train_state(state, config)
  assert params.channels == 1
  return params


def _rotated_affine():
  angle = np.deg2rad(30)
  rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                       [0, 0, 1]])
  affine = np.eye(4)
  affine[:3, :3] = rotation @ np.diag([0.8, 0.9, 2.5])
  affine[:3, 3] = (-40.0, 12.5, 7.0)
  return affine


def test_nifti_round_trip_keeps_shape_affine_and_header(gray_params, tmp_path):
  nibabel = _nibabel()
  affine = _rotated_affine()
  stored = np.round(_smooth_volume((20, 24, 6), seed=1) * 1000).astype(np.int16)
  image = nibabel.Nifti1Image(stored, affine)
  image.header.set_qform(affine, code=1)
  image.header.set_sform(affine, code=2)
  image.header.set_xyzt_units("mm", "sec")
  image.header.set_slope_inter(2.0, -100.0)  # Must not leak into the labels.
  image.header["descrip"] = b"synthetic scan"
  nibabel.save(image, tmp_path / "scan.nii.gz")

  volume = medical.read_nifti(tmp_path / "scan.nii.gz")
  np.testing.assert_allclose(volume.data, stored * 2.0 - 100.0)
  labels = volume_lib.segment_volume(gray_params, volume.data, axis=1, num_clusters=3,
                                     mode="slices")
  assert labels.shape == stored.shape and labels.dtype == np.int32
  # Slicing along axis 1: each slice [:, j, :] is a segment of the volume scaled once.
  scaled = pixels.to_unit_range(volume.data)
  np.testing.assert_array_equal(labels[:, 7, :],
                                cuts_jax.segment(gray_params, scaled[:, 7, :], num_clusters=3))
  for j in range(labels.shape[1]):
    np.testing.assert_array_equal(np.unique(labels[:, j, :]),
                                  np.arange(labels[:, j, :].max() + 1))

  written = medical.write_nifti_labels(labels, tmp_path / "out" / "scan_labels.nii.gz",
                                       like=volume)
  back = nibabel.load(written)
  assert back.shape == stored.shape
  np.testing.assert_allclose(back.affine, affine, atol=1e-5)
  np.testing.assert_array_equal(np.asanyarray(back.dataobj), labels)
  assert back.header.get_data_dtype() == np.int16
  assert back.header.get_xyzt_units() == ("mm", "sec")
  np.testing.assert_allclose(back.header.get_zooms(), image.header.get_zooms())
  assert int(back.header["qform_code"]) == 1 and int(back.header["sform_code"]) == 2
  np.testing.assert_allclose(back.header.get_qform(), image.header.get_qform(), atol=1e-5)
  assert back.header.get_intent()[0] == "label"
  assert bytes(back.header["descrip"]).startswith(b"synthetic scan")


def test_volume_scaling_is_the_same_for_every_slice(monkeypatch):
  seen = []

  def fake_segment(params, image, **kwargs):
    seen.append(image)
    return np.zeros(image.shape[:2], np.int32)

  monkeypatch.setattr(volume_lib.segmentation, "segment", fake_segment)
  # Slice k is 1000 + 500 k plus a small pattern: per-slice min-max would
  # stretch every slice to [0, 1]; the volume's own scaling keeps them apart.
  pattern = np.arange(12, dtype=np.uint16).reshape(3, 4)
  volume = np.stack([1000 + 500 * k + pattern for k in range(4)], axis=-1).astype(np.uint16)
  params = types.SimpleNamespace(channels=3, cluster_metric=None,
                                 settings=segmentation.SegmentSettings(space="embedding"))
  labels = volume_lib.segment_volume(params, volume, axis=-1, mode="slices")
  assert labels.shape == volume.shape and labels.dtype == np.int32
  low, high = volume.min(), volume.max()
  assert len(seen) == 4
  for k, image in enumerate(seen):
    assert image.dtype == np.float32 and image.shape == (3, 4, 3)
    expected = (volume[..., k].astype(np.float64) - low) / (high - low)
    np.testing.assert_allclose(image[..., 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])  # Gray repeated to RGB.


def _write_dicom_slice(path, pixels, *, position, instance, series_uid):
  pydicom = _pydicom()
  from pydicom.dataset import Dataset, FileMetaDataset
  from pydicom import uid
  dataset = Dataset()
  dataset.file_meta = FileMetaDataset()
  dataset.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
  dataset.file_meta.MediaStorageSOPClassUID = uid.CTImageStorage
  dataset.SOPClassUID = uid.CTImageStorage
  dataset.SeriesInstanceUID = series_uid
  dataset.ImagePositionPatient = list(position)
  dataset.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
  dataset.PixelSpacing = [0.5, 0.7]
  dataset.InstanceNumber = instance
  dataset.RescaleSlope = 2
  dataset.RescaleIntercept = -1024
  dataset.set_pixel_data(pixels.astype(np.uint16), "MONOCHROME2", 12)
  dataset.save_as(path, enforce_file_format=True)
  assert pydicom.dcmread(path).InstanceNumber == instance


def _write_series(folder, stored_slices, *, series_uid="1.2.3.4"):
  """Slice k lies at z = 30 - 2k (so sorted by position it comes last); names shuffled."""
  folder.mkdir(parents=True, exist_ok=True)
  for k, pixels in enumerate(stored_slices):
    _write_dicom_slice(folder / f"im{(k * 7) % 5}_{k}.dcm", pixels,
                       position=(-100.0, -50.0, 30.0 - 2.0 * k), instance=k + 1,
                       series_uid=series_uid)


def test_dicom_series_is_sorted_rescaled_and_placed(gray_params, tmp_path):
  nibabel = _nibabel()
  stored = [np.round(_smooth_volume((18, 20), seed=k) * 1000 + 100 * k) for k in range(4)]
  _write_series(tmp_path / "series", stored)
  volume = medical.read_dicom_series(tmp_path / "series")
  assert volume.data.shape == (18, 20, 4) and volume.header is None
  # Sorted along the slice normal: the slice written last (lowest z) comes first.
  for index, k in enumerate(reversed(range(4))):
    np.testing.assert_array_equal(volume.data[..., index], stored[k] * 2 - 1024)
  # RAS+: DICOM's LPS x and y flip sign; the first voxel sits at the lowest slice's position.
  np.testing.assert_allclose(volume.affine @ [0, 0, 0, 1], [100.0, 50.0, 24.0, 1.0])
  np.testing.assert_allclose(volume.affine @ [1, 2, 3, 1], [100.0 - 1.4, 50.0 - 0.5, 30.0, 1])

  labels = volume_lib.segment_volume(gray_params, volume.data, num_clusters=3)
  written = medical.write_nifti_labels(labels, tmp_path / "series_labels.nii", like=volume)
  back = nibabel.load(written)
  np.testing.assert_allclose(back.affine, volume.affine, atol=1e-5)
  np.testing.assert_array_equal(np.asanyarray(back.dataobj), labels)


def test_dicom_problems_are_reported_clearly(tmp_path):
  _pydicom()
  with pytest.raises(data.DataError, match="no DICOM files"):
    medical.read_dicom_series(tmp_path)
  pixels = np.zeros((4, 5))
  _write_series(tmp_path / "two", [pixels, pixels])
  _write_dicom_slice(tmp_path / "two" / "other.dcm", pixels, position=(0, 0, 9), instance=1,
                     series_uid="9.9.9")
  with pytest.raises(data.DataError, match="2 DICOM series"):
    medical.read_dicom_series(tmp_path / "two")
  _write_series(tmp_path / "broken", [pixels, pixels])
  (tmp_path / "broken" / "zz.dcm").write_bytes(b"\0" * 10)
  with pytest.raises(data.DataError, match="zz.dcm"):
    medical.read_dicom_series(tmp_path / "broken")


def test_nifti_problems_are_reported_clearly(tmp_path):
  nibabel = _nibabel()
  nibabel.save(nibabel.Nifti1Image(np.zeros((6, 6, 3), np.float32), np.eye(4)),
               tmp_path / "whole.nii.gz")
  raw = (tmp_path / "whole.nii.gz").read_bytes()
  (tmp_path / "truncated.nii.gz").write_bytes(raw[:len(raw) // 2])
  with pytest.raises(data.DataError, match="truncated.nii.gz"):
    medical.read_nifti(tmp_path / "truncated.nii.gz")
  nibabel.save(nibabel.Nifti1Image(np.zeros((6, 6, 3, 2), np.float32), np.eye(4)),
               tmp_path / "series.nii")
  with pytest.raises(data.DataError, match="3-D"):
    medical.read_nifti(tmp_path / "series.nii")
  with pytest.raises(ValueError, match="3-D"):
    volume_lib.segment_volume(types.SimpleNamespace(channels=1), np.zeros((6, 6)))
  volume = medical.read_nifti(tmp_path / "whole.nii.gz")
  with pytest.raises(ValueError, match="shape"):
    medical.write_nifti_labels(np.zeros((6, 6, 2), np.int32), tmp_path / "l.nii", like=volume)
  with pytest.raises(ValueError, match="fit"):
    medical.write_nifti_labels(np.full((6, 6, 3), 40000), tmp_path / "l.nii", like=volume)


def test_missing_extra_names_the_install_command(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "nibabel", None)
  monkeypatch.setitem(sys.modules, "pydicom", None)
  with pytest.raises(ImportError, match=r'pip install "cuts_jax\[medical\]"'):
    medical.read_nifti(tmp_path / "scan.nii.gz")
  with pytest.raises(ImportError, match=r'pip install "cuts_jax\[medical\]"'):
    medical.read_dicom_series(tmp_path)


@pytest.mark.parametrize("top, dtype", [(9, np.uint8), (255, np.uint8), (300, np.uint16)])
def test_png_label_maps_keep_the_label_values(tmp_path, top, dtype):
  from skimage import io
  labels = np.resize(np.arange(top + 1), (5, 8))
  labels[-1, -1] = top
  path = medical.write_label_png(labels, tmp_path / "labels.png")
  back = io.imread(path)
  assert back.dtype == dtype
  np.testing.assert_array_equal(back, labels)


def test_png_label_maps_refuse_what_a_png_cannot_hold(tmp_path):
  with pytest.raises(ValueError, match="0..65535"):
    medical.write_label_png(np.array([[-1, 0]]), tmp_path / "labels.png")
  with pytest.raises(ValueError, match="2-D"):
    medical.write_label_png(np.zeros((2, 2, 2), np.int32), tmp_path / "labels.png")
  with pytest.raises(ValueError, match="integers"):
    medical.write_label_png(np.zeros((2, 2)) + 0.5, tmp_path / "labels.png")
