"""Volumes as volumes: one clustering for every slice, one click selects a structure in 3-D."""

import jax.numpy as jnp
import numpy as np
import pytest

import cuts_jax
from cuts_jax import model as model_lib
from cuts_jax import pixels
from cuts_jax import segmentation
from cuts_jax import volume as volume_lib


@pytest.fixture(scope="module")
def intensity_params():
  """A one-layer encoder whose embedding is (intensity, 1 - intensity): no training needed.

  It tests what the volume code does with embeddings, not what a trained
  encoder learns: its settings cluster the embeddings alone, at each slice's
  own size (the features `segment` adds are tested with a trained model).
  """
  kernel = np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)
  return segmentation.SegmentationParams(
      params={"conv0": {"kernel": jnp.asarray(kernel)},
              "batch_norm0": {"scale": jnp.ones(2), "bias": jnp.array([0.0, 1.0])}},
      # var + eps = 1: the batch norm passes values through.
      batch_stats={"batch_norm0": {"mean": jnp.zeros(2), "var": jnp.full(2, 1.0 - 1e-5)}},
      encoder=model_lib.Encoder(kernel_sizes=(1,), features=(2,), embedding_dim=0),
      channels=1, image_size=(16, 16), cluster_metric=None,
      settings=segmentation.SegmentSettings(space="embedding", image_weight=0.0,
                                            at_training_size=False))


@pytest.fixture(scope="module")
def tiny_params(tiny_workdir):
  return cuts_jax.load(tiny_workdir)


def _tube_and_blob(shape=(10, 24, 28), seed=0):
  """A bright tube crossing every slice of axis 0 diagonally, a bright blob apart, dim noise."""
  z, y, x = np.indices(shape)
  # On slice 0 the tube covers pixel (0, 0), so it is the first label seen there.
  tube = (y - 2 * z) ** 2 + (x - 2 * z) ** 2 <= 3.5 ** 2
  blob = (y - 18) ** 2 + (x - 22) ** 2 + (z - 5) ** 2 <= 3 ** 2
  noise = 0.02 * np.random.default_rng(seed).standard_normal(shape)
  return np.where(tube | blob, 0.8, 0.2) + noise, tube, blob


def test_a_tube_through_every_slice_is_one_label_and_one_click_recovers_it(intensity_params):
  volume, tube, blob = _tube_and_blob()
  labels = cuts_jax.segment_volume(intensity_params, volume, axis=0, num_clusters=2)
  assert labels.shape == volume.shape and labels.dtype == np.int32
  tube_labels = {int(v) for s in range(volume.shape[0]) for v in np.unique(labels[s][tube[s]])}
  assert len(tube_labels) == 1  # The same label on every slice.
  click = (5, 10, 10)
  assert tube[click]
  np.testing.assert_array_equal(cuts_jax.select(labels, click), tube)
  # Connected segments: the blob looks like the tube but is a segment of its own.
  np.testing.assert_array_equal(cuts_jax.select(labels, click, connected=False), tube)
  clusters = cuts_jax.segment_volume(intensity_params, volume, axis=0, num_clusters=2,
                                     connected=False)
  np.testing.assert_array_equal(cuts_jax.select(clusters, click, connected=False), tube | blob)


def test_slices_mode_clusters_each_slice_on_its_own(intensity_params):
  volume, tube, _ = _tube_and_blob()
  labels = volume_lib.segment_volume(intensity_params, volume, axis=0, num_clusters=2,
                                     method="kmeans", mode="slices")
  # Each slice is exactly `segment` of that slice alone, numbered on its own:
  # the tube, first seen on slice 0, is label 0 there but not on the last slice.
  unit = (volume - volume.min()) / (volume.max() - volume.min())
  for index in (0, len(volume) - 1):
    np.testing.assert_array_equal(
        labels[index], cuts_jax.segment(intensity_params, unit[index], num_clusters=2,
                                        method="kmeans"))
  assert np.bincount(labels[0][tube[0]]).argmax() == 0
  assert np.bincount(labels[-1][tube[-1]]).argmax() != 0


def test_resized_slices_and_other_axes_keep_the_volume_shape(intensity_params):
  volume, tube, _ = _tube_and_blob()
  for axis in (1, -1):
    slice_shape = np.delete(volume.shape, axis)
    # k-means: resampling blurs the tube's rim, which spectral k = 2 may split off.
    labels = volume_lib.segment_volume(intensity_params, volume, axis=axis, num_clusters=2,
                                       method="kmeans",
                                       resize_to=tuple(int(s) * 2 for s in slice_shape))
    assert labels.shape == volume.shape
    mask = cuts_jax.select(labels, (5, 10, 10))
    assert 2 * np.sum(mask & tube) / (mask.sum() + tube.sum()) > 0.9


@pytest.mark.parametrize("spacing, split_axis", [((10.0, 1.0, 1.0), 0), ((1.0, 1.0, 1.0), 1)])
def test_position_feature_measures_positions_in_spacing_units(intensity_params, spacing,
                                                              split_axis):
  # Dim noise only: with positions weighted far above the look, two clusters
  # halve the volume across its longest side in millimetres (not snapped: noise has no edges
  # for the halves' border to follow).
  shape = (4, 16, 6)
  volume = 0.5 + 0.01 * np.random.default_rng(1).standard_normal(shape)
  labels = volume_lib.segment_volume(intensity_params, volume, axis=2, num_clusters=2,
                                     method="kmeans", spacing=spacing, position_weight=20.0,
                                     snap_scale=0)
  halves = np.split(labels, 2, axis=split_axis)
  assert len(np.unique(halves[0])) == 1 and len(np.unique(halves[1])) == 1
  assert halves[0].flat[0] != halves[1].flat[0]


def test_a_one_slice_volume_has_the_features_segment_clusters(tiny_params):
  # The volume's features are each slice's `image_features`: at the model's size, the
  # embeddings beside the smoothed intensities, scaled over the volume (here: one slice),
  # kept in float16 (pca_dim=None: every column, centred by no PCA).
  from cuts_jax import volume_features  # pylint: disable=import-outside-toplevel
  volume = np.random.default_rng(2).normal(100, 20, (1, 20, 22))
  kept = volume_features.volume_features(tiny_params, volume, axis=0, pca_dim=None)
  image = np.repeat(pixels.to_unit_range(volume)[0][..., None], 3, axis=-1)
  expected = cuts_jax.segmentation.image_features(tiny_params, image)
  assert kept.features.dtype == np.float16 and kept.grid_shape == (1, *expected.shape[:2])
  np.testing.assert_allclose(kept.features[0], expected, rtol=2e-3, atol=2e-3)


def test_a_volume_takes_the_models_k_unless_told(tiny_params):
  volume = np.random.default_rng(3).normal(size=(3, 20, 22))
  labels = volume_lib.segment_volume(tiny_params.with_settings(num_clusters=3), volume, axis=0,
                                     connected=False)
  assert len(np.unique(labels)) == 3
  labels = volume_lib.segment_volume(tiny_params, volume, axis=0, num_clusters=2,
                                     method="kmeans", connected=False)
  assert len(np.unique(labels)) == 2


def test_volume_options_are_checked(intensity_params):
  volume = np.zeros((4, 5, 6))
  with pytest.raises(ValueError, match="3-D volume"):
    volume_lib.segment_volume(intensity_params, volume[0])
  with pytest.raises(ValueError, match="unknown mode"):
    volume_lib.segment_volume(intensity_params, volume, mode="3d")
  with pytest.raises(ValueError, match="spacing"):
    volume_lib.segment_volume(intensity_params, volume, spacing=(1.0, 0.0, 1.0))
  with pytest.raises(ValueError, match="spacing"):
    volume_lib.segment_volume(intensity_params, volume, spacing=(1.0, 2.0))
  with pytest.raises(ValueError, match="position_weight"):
    volume_lib.segment_volume(intensity_params, volume, position_weight=-1.0)
  with pytest.raises(ValueError, match="axes 0, 1 and 2"):
    volume_lib.segment_volume(intensity_params, volume, axis=3)
  with pytest.raises(ValueError, match="num_clusters"):
    volume_lib.segment_volume(intensity_params, volume, num_clusters=0)
  with pytest.raises(TypeError, match="unknown segmentation option"):
    volume_lib.segment_volume(intensity_params, volume, clusters=3)


def test_select_in_a_volume_needs_a_voxel_inside_it():
  labels = np.zeros((3, 4, 5), np.int32)
  with pytest.raises(ValueError, match="give 3 indices"):
    cuts_jax.select(labels, (1, 2))
  with pytest.raises(ValueError, match="outside the 3x4x5 label volume"):
    cuts_jax.select(labels, (1, 2, 5))
  with pytest.raises(ValueError, match="integers"):
    cuts_jax.select(labels.astype(float), (1, 2, 3))


def test_select_on_an_image_keeps_the_whole_segment_unless_asked():
  labels = np.array([[1, 0, 1],
                     [1, 0, 0],
                     [0, 1, 1]], np.int32)
  np.testing.assert_array_equal(cuts_jax.select(labels, (0, 0)), labels == 1)
  np.testing.assert_array_equal(cuts_jax.select(labels, (0, 0), connected=True),
                                [[True, False, False], [True, False, False],
                                 [False, False, False]])
  # Diagonal contacts do not connect: (1, 0) and (2, 1) touch only at a corner.
  assert not cuts_jax.select(labels, (2, 2), connected=True)[1, 0]


def test_a_3d_mask_keeps_the_scans_affine_through_nifti(intensity_params, tmp_path):
  nibabel = pytest.importorskip("nibabel", reason="nibabel is not installed (the medical extra)")
  from cuts_jax.io import medical  # pylint: disable=import-outside-toplevel
  volume, tube, _ = _tube_and_blob()
  affine = np.array([[0.0, 0.0, 2.5, -30.0], [0.9, 0.1, 0.0, 12.0], [0.0, 0.8, 0.0, 5.0],
                     [0.0, 0.0, 0.0, 1.0]])
  nibabel.save(nibabel.Nifti1Image(np.round(volume * 1000).astype(np.int16), affine),
               tmp_path / "scan.nii.gz")
  scan = medical.read_nifti(tmp_path / "scan.nii.gz")
  np.testing.assert_allclose(scan.spacing, (0.9, np.hypot(0.1, 0.8), 2.5), rtol=1e-6)
  labels = cuts_jax.segment_volume(intensity_params, scan.data, axis=0, num_clusters=2)
  mask = cuts_jax.select(labels, (5, 10, 10))
  written = medical.write_nifti_labels(mask.astype(np.uint8), tmp_path / "mask.nii.gz",
                                       like=scan, dtype=np.uint8)
  back = medical.read_nifti(written)
  np.testing.assert_allclose(back.affine, affine, atol=1e-6)
  np.testing.assert_array_equal(back.data == 1, tube)


def test_3d_baselines_label_the_whole_volume_at_once():
  from cuts_jax.evaluation import volume_baselines  # pylint: disable=import-outside-toplevel
  volume, tube, blob = _tube_and_blob()
  volume = np.clip(volume, 0.0, 1.0)
  click = (5, 10, 10)
  for labels in (volume_baselines.otsu_volume(volume),
                 volume_baselines.kmeans_volume(volume, num_clusters=2),
                 volume_baselines.kmeans_volume(volume, num_clusters=2, smoothing_sigma=0.5)):
    assert labels.shape == volume.shape and labels.dtype == np.int32
    np.testing.assert_array_equal(cuts_jax.select(labels, click), tube)
  supervoxels = volume_baselines.slic_volume(volume, num_segments=8, spacing=(2.0, 1.0, 1.0))
  assert supervoxels.shape == volume.shape and 2 <= len(np.unique(supervoxels)) <= 16
  # Above the minimum: the black background is a segment apart from the threshold's two.
  volume[:, :, :3] = 0.0
  labels = volume_baselines.otsu_volume(volume, above_minimum=True)
  assert set(np.unique(labels[:, :, :3])) == {2}
  assert set(np.unique(labels[tube & (volume > 0)])) == {1}
  with pytest.raises(ValueError, match="3-D volume"):
    volume_baselines.otsu_volume(volume[0])
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    volume_baselines.kmeans_volume(volume * 3)
