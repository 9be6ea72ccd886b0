"""Loaders on the real shared data and on files written by the tests."""

import numpy as np
import pytest
from skimage import io

from configs import default
from conftest import shared_data
from cuts_jax.io import datasets as data


def test_retina_loader_on_the_shared_set():
  root = shared_data("retina_ga")
  dataset = data.load_retina(root, (128, 128))
  assert dataset.images.shape == (28, 128, 128, 3) and dataset.images.dtype == np.float32
  assert 0.0 <= dataset.images.min() and dataset.images.max() <= 1.0
  assert dataset.masks.shape == (28, 128, 128) and set(np.unique(dataset.masks)) == {0, 1}
  assert dataset.names[0] == "image9"  # Natural order: image9 before image11.
  small = data.load_retina(root, (64, 64), limit=3)
  assert small.images.shape == (3, 64, 64, 3) and small.masks.shape == (3, 64, 64)


def test_bsds500_loader_keeps_every_human_segmentation():
  root = shared_data("bsds500")
  dataset = data.load_bsds500(root, (128, 128), splits=("val",), limit=3)
  assert dataset.images.shape == (3, 128, 128, 3)
  for humans, original in zip(dataset.human_segmentations, dataset.original_images):
    assert len(humans) >= 4
    assert all(h.shape == original.shape[:2] and h.min() >= 1 for h in humans)
    assert original.shape[:2] in ((321, 481), (481, 321))


def test_volume_slices_with_ventricle_target():
  path = shared_data("brain_mri/test_scan.npz")
  dataset = data.load_volume_slices(path, (96, 96), axis=0, label_ids=(4, 43, 5, 44, 14, 15),
                                    min_target_pixels=100)
  assert dataset.images.shape[1:] == (96, 96, 1)
  assert 30 <= len(dataset) <= 120
  assert dataset.masks.shape == dataset.images.shape[:3]
  assert np.all(dataset.masks.reshape(len(dataset), -1).sum(-1) > 0)


def test_volume_written_by_the_test(tmp_path):
  volume = np.zeros((6, 20, 30), np.float64)
  volume[:, 5:15, 5:25] = 2000.0
  segmentation = np.zeros((6, 20, 30), np.int32)
  segmentation[2:4, 8:12, 8:12] = 4
  np.savez(tmp_path / "scan.npz", vol=volume, seg=segmentation)
  every_slice = data.load_volume_slices(tmp_path / "scan.npz", (20, 30), axis=0,
                                        label_ids=(4,))
  assert len(every_slice) == 6 and every_slice.masks.sum() == 2 * 16
  dataset = data.load_volume_slices(tmp_path / "scan.npz", (20, 30), axis=0, label_ids=(4,),
                                    min_target_pixels=1)
  assert dataset.names == ["scan_axis0_slice002", "scan_axis0_slice003"]
  assert dataset.images.max() == 1.0  # Scaled over the whole volume.
  assert dataset.masks[0, 8:12, 8:12].all() and dataset.masks.sum() == 2 * 16
  along_2 = data.load_volume_slices(tmp_path / "scan.npz", (6, 20), axis=2)
  assert len(along_2) == 30 and along_2.masks is None
  one_half = data.load_volume_slices(tmp_path / "scan.npz", (20, 30), axis=0, label_ids=(4,),
                                     min_target_pixels=1, slice_range=(3, 6))
  assert one_half.names == ["scan_axis0_slice003"]
  with pytest.raises(data.DataError, match="slice_range"):
    data.load_volume_slices(tmp_path / "scan.npz", (20, 30), slice_range=(4, 2))


def test_image_folder_mixes_formats_and_keeps_grayscale(tmp_path):
  rng = np.random.default_rng(0)
  io.imsave(tmp_path / "a.png", (rng.random((40, 50)) * 255).astype(np.uint8))
  np.save(tmp_path / "b.npy", rng.random((40, 50)).astype(np.float32))
  (tmp_path / "notes.txt").write_text("not an image")
  dataset = data.load_image_folder(tmp_path, (32, 32))
  assert dataset.images.shape == (2, 32, 32, 1) and dataset.names == ["a", "b"]


def test_missing_and_empty_data_sets_say_what_to_do(tmp_path):
  with pytest.raises(data.DataError, match="--config.data.root"):
    data.load_retina("", (128, 128))
  with pytest.raises(data.DataError, match="not found"):
    data.load_retina(tmp_path / "nowhere", (128, 128))
  with pytest.raises(data.DataError, match="no images"):
    data.load_image_folder(tmp_path, (32, 32))
  config = default.get_config().data
  config.kind = "pictures"
  with pytest.raises(data.DataError, match="kind"):
    data.load_dataset(config)


def test_demo_data_ships_with_scikit_image():
  dataset = data.load_demo((64, 64))
  assert dataset.images.shape[1:] == (64, 64, 3) and len(dataset) >= 10
  assert any(name.startswith("retina") for name in dataset.names)


def test_demo_images_come_at_their_own_sizes():
  names, images = data.demo_images()
  assert len(names) == len(images) and names[0] == "retina"
  assert images[0].shape == (1411, 1411, 3) and images[0].dtype == np.float32
  assert all(0 <= image.min() and image.max() <= 1 for image in images)


def test_from_arrays_scales_resizes_and_names_images():
  rng = np.random.default_rng(0)
  gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
  rgba = rng.uniform(0, 1000, (40, 60, 4))
  dataset = data.from_arrays([gray, rgba], image_size=(16, 24))
  assert dataset.images.shape == (2, 16, 24, 3) and dataset.names == ["image0", "image1"]
  assert 0 <= dataset.images.min() and dataset.images.max() <= 1
  # Gray and colour together become colour: the gray image repeated in every channel.
  assert np.array_equal(dataset.images[0, ..., 0], dataset.images[0, ..., 2])
  same_size = data.from_arrays([gray, gray.T.T], names=["a", "b"])
  assert same_size.images.shape == (2, 20, 30, 1) and same_size.names == ["a", "b"]


def test_from_arrays_says_what_is_wrong():
  with pytest.raises(data.DataError, match="no images"):
    data.from_arrays([])
  with pytest.raises(data.DataError, match="different sizes.*image_size"):
    data.from_arrays([np.zeros((8, 8)), np.zeros((9, 8))])
  with pytest.raises(data.DataError, match="^b: .*NaN"):
    data.from_arrays([np.zeros((8, 8)), np.full((8, 8), np.nan)], names=["a", "b"])
  with pytest.raises(data.DataError, match="2 names for 1 images"):
    data.from_arrays([np.zeros((8, 8))], names=["a", "b"])
  config = default.get_config().data
  config.kind = "arrays"
  with pytest.raises(data.DataError, match="dataset="):
    data.load_dataset(config)


def test_a_new_data_kind_is_one_loader_in_the_table(monkeypatch):
  def load_stripes(data_config, size, *, limit, shard_index, shard_count):
    del data_config, limit, shard_index, shard_count
    return data.from_arrays([np.tile([0.0, 1.0], (6, 3))], image_size=size)

  monkeypatch.setitem(data.LOADERS, "stripes", load_stripes)
  config = default.get_config().data
  config.kind, config.image_size = "stripes", (4, 4)
  assert data.load_dataset(config).images.shape == (1, 4, 4, 1)
  assert set(data.DATA_KINDS) <= set(data.LOADERS)


def test_shards_partition_the_data():
  everything = data.load_demo((16, 16)).names
  shards = [data.load_demo((16, 16), shard_index=i, shard_count=3).names for i in range(3)]
  assert sorted(sum(shards, [])) == sorted(everything)
