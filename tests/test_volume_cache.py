"""Volumes in 3-D: kept features (`volume_features`, `FeatureCache`), anisotropic voxels, folding."""

import dataclasses

import numpy as np
import pytest

import cuts_jax
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax import segmentation
from cuts_jax import volume as volume_lib
from cuts_jax import volume_features


@pytest.fixture(scope="module")
def tiny_params(tiny_workdir):
  # Each slice at its own size: the tests' volumes are small.
  return cuts_jax.load(tiny_workdir).with_settings(at_training_size=False)


def _slab_volume(seed=0):
  """Dim noise with a bright square one voxel thick along axis 0 (slice 3 of 7)."""
  volume = 0.2 + 0.02 * np.random.default_rng(seed).standard_normal((7, 24, 24))
  slab = np.zeros(volume.shape, bool)
  slab[3, 6:18, 6:18] = True
  volume[slab] = 0.8
  return volume, slab


def _dice(mask, target):
  return 2 * np.sum(mask & target) / (mask.sum() + target.sum())


def test_a_structure_one_voxel_thick_across_thick_slices_is_one_3d_segment(tiny_params):
  volume, slab = _slab_volume()
  click = (3, 12, 12)
  # 4 mm between slices, 1 mm within them: the intensities are smoothed across slices
  # over half a slice (2 px x 1 mm / 4 mm), so the slab stays one voxel thick.
  labels = cuts_jax.segment_volume(tiny_params, volume, axis=0, spacing=(4.0, 1.0, 1.0),
                                   num_clusters=2, method="kmeans", image_weight=10.0)
  mask = cuts_jax.select(labels, click)
  assert _dice(mask, slab) > 0.9
  # One 3-D component, and a segment of the label volume itself (not only after select).
  np.testing.assert_array_equal(labels == labels[click], mask)
  # Taken as 1 mm slices, the same smoothing spreads the slab over its neighbours (seen
  # unsnapped: the slices' superpixels would redraw the slab's border).
  isotropic = cuts_jax.segment_volume(tiny_params, volume, axis=0, spacing=1.0,
                                      num_clusters=2, method="kmeans", image_weight=10.0,
                                      snap_scale=0)
  assert _dice(cuts_jax.select(isotropic, click), slab) < 0.8


def test_3d_pieces_are_face_connected_and_borders_are_measured_in_area():
  labels = np.zeros((3, 4, 4), np.int32)
  labels[1, 1:3, 1:3] = 1  # One piece, one voxel thick along axis 0.
  labels[0, 0, 0] = 1  # Touches the first only at a corner: a piece of its own.
  segments = regions.connected_segments(labels)
  assert len(np.unique(segments[labels == 1])) == 2
  # A one-voxel piece between two big ones folds into the one it shares more area with:
  # with thick slices (spacing 5 along axis 0), its faces across the slices are larger.
  labels = np.zeros((2, 3, 3), np.int32)
  labels[1] = 2
  labels[:, :, 2] = 2
  labels[0, 1, 1] = 1
  # Voxel (0, 1, 1): 3 faces on label 0 in-plane, 1 face on label 2 in-plane and 1 across.
  flat = regions.connected_segments(labels, min_size=2)
  thick = regions.connected_segments(labels, min_size=2, spacing=(1.0, 5.0, 5.0))
  assert flat[0, 1, 1] == flat[0, 0, 0]  # Four faces of area 1 against two.
  assert thick[0, 1, 1] == thick[1, 1, 1]  # Across: area 25; in-plane faces: 5 each.


def test_the_clicked_piece_is_never_folded_away(tiny_params):
  labels = np.zeros((6, 10, 10), np.int32)
  labels[2:5, 3:7, 3:7] = 1  # 48 voxels, below the fold threshold.
  labels[3, 4, 4] = 2  # Inside it: a piece folded into it.
  folded = regions.connected_segments(labels, min_size=60)
  assert len(np.unique(folded)) == 1
  kept = regions.connected_segments(labels, min_size=60, keep=[(2, 3, 3)])
  np.testing.assert_array_equal(kept == kept[2, 3, 3], labels > 0)
  # Through segment_volume: a small dark blob in a bright volume, clicked.
  volume = 0.8 + 0.01 * np.random.default_rng(1).standard_normal((6, 20, 20))
  volume[2:4, 8:10, 8:10] = 0.1
  blob = volume < 0.5
  # The default floor (27 voxels on a large grid) shrinks with this small grid's fold
  # threshold to 1 voxel: every clicked piece is kept.
  options = dict(axis=0, num_clusters=2, method="kmeans", image_weight=10.0, image_sigma=0.3,
                 min_segment_fraction=0.01)
  assert not np.array_equal(cuts_jax.select(volume_lib.segment_volume(
      tiny_params, volume, **options), (3, 9, 9)), blob)  # 8 < 24 voxels: folded away.
  labels = volume_lib.segment_volume(tiny_params, volume, keep=[(3, 9, 9)], **options)
  assert _dice(cuts_jax.select(labels, (3, 9, 9)), blob) > 0.9


def test_a_small_structure_far_below_the_fold_stays_clickable_on_a_large_grid():
  # A lesion-sized piece (200 voxels) on the brain's grid, where the fold threshold is 1000.
  settings = segmentation.SegmentSettings()
  voxels = 160 * 128 * 128
  fold, floor = settings.volume_fold_threshold(voxels), settings.volume_kept_floor(voxels)
  assert (fold, floor) == (1000, 27)
  labels = np.zeros((20, 40, 40), np.int32)
  labels[8:16, 10:15, 10:15] = 1
  kept = regions.connected_segments(labels, min_size=fold, keep=[(10, 12, 12)], min_kept=floor)
  np.testing.assert_array_equal(kept == kept[10, 12, 12], labels == 1)


def test_a_volumes_segments_follow_its_slices_superpixels(tiny_params):
  volume, slab = _slab_volume()
  kept = volume_features.volume_features(tiny_params, volume, axis=0)
  assert kept.images.shape == (*kept.grid_shape, tiny_params.channels)
  superpixels = volume_features.grid_superpixels(kept, 32.0)
  # Numbered apart across slices: no superpixel spans two slices.
  assert not set(np.unique(superpixels[2])) & set(np.unique(superpixels[3]))
  settings = cuts_jax.resolve_settings(tiny_params, num_clusters=3, method="kmeans")
  snapped = volume_lib.segments_from_volume_features(kept, settings=settings, on_grid=True)
  plain = volume_lib.segments_from_volume_features(
      kept, settings=dataclasses.replace(settings, snap_scale=None), on_grid=True)

  def agreeing(labels):  # Voxels whose label is their superpixel's most common one.
    return np.mean(scales.snap_to_superpixels(labels, superpixels) == labels)

  # Not every voxel: a superpixel joined only at a corner is two 3-D pieces when re-cut.
  assert agreeing(snapped) > 0.99 > agreeing(plain)


def test_a_clicked_speck_folds_into_the_structure_around_it():
  labels = np.zeros((6, 10, 10), np.int32)
  labels[1:5, 2:8, 2:8] = 1  # 144 voxels, above the fold threshold 100.
  labels[2:4, 4, 7] = 2  # A 2-voxel speck on the structure's rim, mostly bordering it.
  speck = (2, 4, 7)
  own = regions.connected_segments(labels, min_size=100, keep=[speck])
  assert np.sum(own == own[speck]) == 2  # Every clicked piece kept: the speck alone.
  floored = regions.connected_segments(labels, min_size=100, keep=[speck], min_kept=27)
  np.testing.assert_array_equal(floored == floored[speck], labels > 0)
  # A clicked piece below the fold threshold but not below the floor is still kept.
  small = np.zeros((6, 10, 10), np.int32)
  small[2:5, 3:7, 3:7] = 1  # 48 voxels.
  kept = regions.connected_segments(small, min_size=60, keep=[(2, 3, 3)], min_kept=27)
  np.testing.assert_array_equal(kept == kept[2, 3, 3], small > 0)
  with pytest.raises(ValueError, match="min_kept"):
    regions.connected_segments(labels, min_size=100, keep=[speck], min_kept=0)


def test_the_cache_keeps_features_until_the_model_or_the_volume_changes(tiny_params, tmp_path):
  volume, _ = _slab_volume()
  cache = volume_features.FeatureCache(directory=tmp_path)
  first = volume_features.volume_features(tiny_params, volume, axis=0, cache=cache)
  assert (cache.hits, cache.misses) == (0, 1)
  assert first.features.dtype == np.float16 and first.grid_shape == volume.shape
  again = volume_features.volume_features(tiny_params, volume, axis=0, cache=cache)
  assert again is first and (cache.hits, cache.misses) == (1, 1)
  # Segmenting with another k reads the kept features.
  cuts_jax.segment_volume(tiny_params, volume, axis=0, cache=cache, num_clusters=3,
                          method="kmeans")
  assert (cache.hits, cache.misses) == (2, 2)  # The slices' superpixels are made once.
  changed = volume.copy()
  changed[0, 0, 0] += 0.01
  assert volume_features.volume_features(tiny_params, changed, axis=0,
                                         cache=cache).key != first.key
  assert cache.misses == 3
  weights = tiny_params.params
  nudged = tiny_params.replace(params={**weights, "conv0": {
      **weights["conv0"], "kernel": weights["conv0"]["kernel"] + 1e-3}})
  assert volume_features.volume_fingerprint(changed) != volume_features.volume_fingerprint(volume)
  assert volume_features.model_fingerprint(nudged) != volume_features.model_fingerprint(tiny_params)
  volume_features.volume_features(nudged, volume, axis=0, cache=cache)
  assert cache.misses == 4
  # Another axis is another grid, so other features too.
  volume_features.volume_features(tiny_params, volume, axis=1, cache=cache)
  assert cache.misses == 5
  # A new cache on the same folder reads the features back from disk.
  fresh = volume_features.FeatureCache(directory=tmp_path)
  back = volume_features.volume_features(tiny_params, volume, axis=0, cache=fresh)
  assert (fresh.hits, fresh.misses) == (1, 0)
  np.testing.assert_array_equal(back.features, first.features)
  np.testing.assert_array_equal(back.images, first.images)  # The slices, for the superpixels.


def test_another_k_reuses_the_kept_spectral_coordinates(tiny_params):
  volume, _ = _slab_volume()
  cache = volume_features.FeatureCache()
  three = cuts_jax.segment_volume(tiny_params, volume, axis=0, cache=cache, num_clusters=3)
  assert cache.misses == 3  # The features, their spectral coordinates, the superpixels.
  four = cuts_jax.segment_volume(tiny_params, volume, axis=0, cache=cache, num_clusters=4,
                                 connected=False)
  assert cache.misses == 3 and len(np.unique(four)) == 4
  # Kept or not, the same settings give the same labels.
  np.testing.assert_array_equal(
      three, cuts_jax.segment_volume(tiny_params, volume, axis=0, num_clusters=3))


def test_the_cache_stays_within_its_memory_budget(tiny_params):
  volume, _ = _slab_volume()
  one = volume_features.volume_features(tiny_params, volume, axis=0)
  cache = volume_features.FeatureCache(max_bytes=int(1.5 * one.nbytes))
  for seed in range(3):
    volume_features.volume_features(tiny_params, _slab_volume(seed)[0], axis=0, cache=cache)
    assert cache.nbytes <= cache.max_bytes
  assert len(cache) == 1
  with pytest.raises(ValueError, match="max_bytes"):
    volume_features.FeatureCache(max_bytes=0)


def test_kept_features_map_voxels_and_labels_between_the_volume_and_the_grid():
  kept = volume_features.VolumeFeatures(
      features=np.zeros((8, 4, 6, 2), np.float16), volume_shape=(9, 8, 12), axis=1,
      spacing=(1.0, 2.0, 0.5), key="test")
  assert kept.grid_shape == (8, 4, 6) and kept.slice_shape == (9, 12)
  np.testing.assert_allclose(kept.grid_spacing, (2.0, 9 / 4, 1.0))
  assert kept.to_grid((8, 7, 11)) == (7, 3, 5)
  grid = np.arange(8 * 4 * 6).reshape(8, 4, 6)
  full = kept.to_volume(grid)
  assert full.shape == (9, 8, 12)
  assert full[8, 7, 11] == grid[kept.to_grid((8, 7, 11))]
  # A bool mask is enlarged in its box only, to the same voxels as any other grid.
  for mask in (grid % 7 == 3, (grid > 40) & (grid < 60), np.zeros(grid.shape, bool)):
    np.testing.assert_array_equal(kept.to_volume(mask), kept.to_volume(mask.astype(int)) == 1)
  with pytest.raises(ValueError, match="feature grid"):
    kept.to_volume(grid[:, :2])


def test_a_3d_stack_selects_with_voxels_of_the_volume(tiny_params):
  volume, slab = _slab_volume()
  cache = cuts_jax.FeatureCache()
  # k-means: the 4-step model's spectral graph of this noise is not stable enough to test on
  # (how the programs are compiled changes whether the slab is found).
  stack, kept = cuts_jax.volume_stack(tiny_params, volume, axis=0, spacing=(4.0, 1.0, 1.0),
                                      cache=cache, scale_num_clusters=(2, 3, 4),
                                      image_weight=10.0, method="kmeans")
  assert stack.labels.shape == (3, *kept.grid_shape) and stack.num_clusters == (2, 3, 4)
  assert cache.misses == 2  # The features and the slices' superpixels, once for every k.
  mask = volume_lib.select_voxels(kept, stack, [(3, 12, 12)], rule=2)
  assert mask.shape == volume.shape and _dice(mask, slab) > 0.9
  # A negative click in the slab leaves the positive click's region without it.
  split = volume_lib.select_voxels(kept, stack, [(3, 7, 7)], negative=[(3, 16, 16)])
  assert split[3, 7, 7] and not split[3, 16, 16]
  with pytest.raises(ValueError, match="give 3 indices"):
    volume_lib.select_voxels(kept, stack, [(3, 12)])
  # A volume's stack takes the volume's cap and fold threshold, not the 2-D ones.
  settings = cuts_jax.resolve_settings(tiny_params, volume_max_fraction=0.3,
                                       volume_min_segment_voxels=3, scale_num_clusters=(2, 3))
  own = volume_lib.stack_from_volume_features(kept, settings=settings, cache=cache)
  assert own.max_fraction == 0.3 != settings.scale_max_fraction and own.folded_below == 3
  # ... and its smallest kept clicked piece, shrunk with the fold threshold on this small grid.
  floored = volume_lib.stack_from_volume_features(
      kept, cache=cache, settings=cuts_jax.resolve_settings(
          tiny_params, settings=settings, volume_min_segment_voxels=40,
          volume_min_kept_voxels=20, min_segment_fraction=0.5))
  assert (floored.folded_below, floored.min_kept) == (40, 20)
