"""One settings object, resolved once: the model's `SegmentSettings` with keyword overrides."""

import dataclasses
import re

import numpy as np
import pytest

import cuts_jax
from configs import berkeley
from conftest import REPO_ROOT
from cuts_jax import features
from cuts_jax import segment_settings
from cuts_jax import segmentation


@pytest.fixture(scope="module")
def params(tiny_workdir):
  return cuts_jax.load(tiny_workdir)


def test_the_settings_come_from_the_config():
  settings = segment_settings.SegmentSettings.from_config(berkeley.get_config().evaluation)
  assert settings.num_clusters == 6 and settings.min_segment_fraction == 0.02
  assert settings.method == "spectral" and settings.seed == 0


def test_a_volume_has_its_own_cap_and_fold_threshold():
  from configs import brain_ventricles  # pylint: disable=import-outside-toplevel
  evaluation = brain_ventricles.get_config().evaluation
  settings = segment_settings.SegmentSettings.from_config(evaluation)
  assert (settings.volume_max_fraction, settings.volume_min_segment_voxels) == (
      evaluation.volume_max_fraction, evaluation.volume_min_segment_voxels)
  # The brain's grid (160 x 128 x 128): the threshold in voxels; a small volume's: at most
  # min_segment_fraction of it, as in 2-D.
  assert settings.volume_fold_threshold(160 * 128 * 128) == evaluation.volume_min_segment_voxels
  assert settings.volume_fold_threshold(10 * 24 * 28) == round(
      settings.min_segment_fraction * 10 * 24 * 28)
  # 0 in a config (or a run's config.json written before the field) means the 2-D threshold.
  evaluation.volume_min_segment_voxels = 0
  as_2d = segment_settings.SegmentSettings.from_config(evaluation)
  assert as_2d.volume_fold_threshold(10**6) == as_2d.fold_threshold(10**6) == 30
  del evaluation["volume_max_fraction"], evaluation["volume_min_segment_voxels"]
  del evaluation["volume_min_kept_voxels"]
  old = segment_settings.SegmentSettings.from_config(evaluation)
  assert (old.volume_max_fraction, old.volume_min_segment_voxels, old.volume_min_kept_voxels) == (
      segment_settings.SegmentSettings.volume_max_fraction,
      segment_settings.SegmentSettings.volume_min_segment_voxels,
      segment_settings.SegmentSettings.volume_min_kept_voxels)


def test_the_smallest_kept_clicked_piece_shrinks_with_the_fold_threshold():
  from configs import brain_ventricles  # pylint: disable=import-outside-toplevel
  evaluation = brain_ventricles.get_config().evaluation
  evaluation.volume_min_kept_voxels = 27
  settings = segment_settings.SegmentSettings.from_config(evaluation)
  assert settings.volume_min_kept_voxels == 27
  # The brain's grid: the floor in voxels; a grid whose fold threshold is capped at a tenth of
  # the configured one: a tenth of the floor (at least 1), so its small structures stay.
  assert settings.volume_kept_floor(160 * 128 * 128) == 27
  assert settings.volume_fold_threshold(20_000) == 100
  assert settings.volume_kept_floor(20_000) == 3
  assert settings.volume_kept_floor(10) == 1
  # With the 2-D fold threshold (no volume threshold), the floor is taken as it is.
  as_2d = dataclasses.replace(settings, volume_min_segment_voxels=None)
  assert as_2d.volume_kept_floor(20_000) == 27


def test_overrides_replace_the_models_values_and_none_keeps_them(params):
  model = cuts_jax.resolve_settings(params)
  assert model == params.settings and model.num_clusters == 10
  settings = cuts_jax.resolve_settings(params, num_clusters=4, at_training_size=None)
  assert settings.num_clusters == 4 and settings.at_training_size == model.at_training_size
  again = cuts_jax.resolve_settings(params, settings=settings, seed=3)
  assert (again.num_clusters, again.seed) == (4, 3)
  assert params.with_settings(num_clusters=4).with_settings(seed=3).settings == again
  assert cuts_jax.resolve_settings(params, resize_to=np.array([20, 24])).resize_to == (20, 24)


@pytest.mark.parametrize("overrides, message", [
    (dict(num_clusters=0), "num_clusters"), (dict(num_clusters=2.5), "num_clusters"),
    (dict(method="watershed"), "clustering method"), (dict(seed=-1), "seed"),
    (dict(space="pixels"), "space"), (dict(image_weight=-1.0), "image_weight"),
    (dict(image_sigma=float("nan")), "image_sigma"), (dict(connected="yes"), "connected"),
    (dict(min_segment_fraction=1.0), "min_segment_fraction"),
    (dict(resize_to=(1, 16)), "resize_to"), (dict(on_device="gpu"), "on_device"),
    (dict(min_segment_pixels=0), "min_segment_pixels"),
    (dict(scale_num_clusters=()), "scale_num_clusters"),
    (dict(scale_num_clusters=(2, 0)), "scale_num_clusters"),
    (dict(scale_rule="persistent"), "scale rule"), (dict(scale_max_fraction=0.0), "scale_max_fraction"),
    (dict(volume_max_fraction=1.5), "volume_max_fraction"),
    (dict(volume_min_segment_voxels=0), "volume_min_segment_voxels"),
    (dict(volume_min_kept_voxels=0), "volume_min_kept_voxels"),
])
def test_every_value_is_checked_in_one_place(params, overrides, message):
  with pytest.raises(ValueError, match=message):
    cuts_jax.resolve_settings(params, **overrides)
  with pytest.raises(ValueError, match=message):
    segment_settings.SegmentSettings(**overrides)


def test_an_unknown_option_or_a_space_the_model_lacks_is_refused(params):
  with pytest.raises(TypeError, match="unknown segmentation option.*'k'.*num_clusters"):
    cuts_jax.segment(params, np.zeros((8, 8, 3)), k=3)
  headless = params.replace(cluster_metric=None, settings=segment_settings.SegmentSettings(
      space="embedding"))
  with pytest.raises(ValueError, match="no reconstruction head"):
    cuts_jax.resolve_settings(headless, space="reconstruction")


def test_the_hierarchy_checks_its_options_as_segment_does(params):
  # segment_hierarchy once skipped segment's range check of min_segment_fraction.
  image = np.zeros((8, 8, 3))
  for function in (cuts_jax.segment, cuts_jax.segment_hierarchy):
    with pytest.raises(ValueError, match="min_segment_fraction"):
      function(params, image, min_segment_fraction=1.5)


def test_segment_clusters_the_shared_image_features(params):
  image = np.random.default_rng(0).integers(0, 256, (20, 26, 3), dtype=np.uint8)
  settings = cuts_jax.resolve_settings(params, num_clusters=4)
  vectors = features.image_features(params, image, settings=settings)
  assert vectors.shape == (32, 32, 16 + 3)  # At the training size, beside the colour.
  prepared = features.image_to_segment(params, image, settings=settings)
  np.testing.assert_array_equal(
      cuts_jax.segment(params, image, settings=settings),
      segmentation.segments_from_features(
          params, vectors, size=(20, 26), settings=settings,
          superpixels=segmentation.superpixels_for(prepared, settings)))
  own = features.image_features(params, image, at_training_size=False, image_weight=0.0)
  assert own.shape == (20, 26, 16)


def test_only_the_resolver_reads_a_models_settings():
  readers = [str(path.relative_to(REPO_ROOT))
             for path in sorted((REPO_ROOT / "cuts_jax").rglob("*.py"))
             if path.name != "segment_settings.py"
             and re.search(r"params\)?\.settings\b", path.read_text())]
  assert not readers, f"read the settings through resolve_settings in {readers}"
