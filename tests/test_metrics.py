"""The evaluation metrics against values worked out by hand and brute force."""

import itertools
import math

import numpy as np
import pytest
import scipy.io
from scipy.spatial import distance
from skimage.metrics import structural_similarity
from skimage.metrics import variation_of_information as skimage_voi

from conftest import shared_data
from cuts_jax.evaluation import metrics


def _mask(shape, *pixels):
  mask = np.zeros(shape, dtype=bool)
  for pixel in pixels:
    mask[pixel] = True
  return mask


# ------------------------------------------------------------------ Dice


def test_dice_of_hand_made_masks():
  # 4 predicted pixels, 6 target pixels, 3 shared: 2 * 3 / (4 + 6) = 0.6.
  prediction = _mask((3, 4), (0, 0), (0, 1), (0, 2), (2, 3))
  target = _mask((3, 4), (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2))
  assert metrics.dice(prediction, target) == pytest.approx(0.6)
  # Nonzero integers count as foreground too.
  assert metrics.dice(prediction.astype(np.uint8) * 7, target) == pytest.approx(0.6)


def test_dice_when_masks_are_empty():
  empty, one = np.zeros((2, 2)), _mask((2, 2), (0, 0))
  assert metrics.dice(empty, empty) == 1.0  # Nothing to find, nothing found.
  assert metrics.dice(one, empty) == 0.0
  assert metrics.dice(empty, one) == 0.0


def test_dice_rejects_a_shape_mismatch():
  with pytest.raises(ValueError, match="shape"):
    metrics.dice(np.ones((2, 2)), np.ones((2, 3)))


# ------------------------------------------------------------------ selection protocols


def test_centre_pixel_of_an_l_shape():
  # Row 2, cols 0..6 (7 px) and col 6, rows 3..6 (4 px): 11 pixels.
  # Sorted rows 2,2,2,2,2,2,2,3,4,5,6 -> median 2;
  # sorted cols 0,1,2,3,4,5,6,6,6,6,6 -> median 5. (2, 5) is in the region.
  target = np.zeros((8, 8), dtype=bool)
  target[2, 0:7] = True
  target[3:7, 6] = True
  assert metrics.centre_pixel(target) == (2, 5)
  # 25th percentile (linear): position 0.25 * 10 = 2.5 -> rows 2, cols 2.5;
  # (2, 2) and (2, 3) tie at distance 0.5 and raster order picks (2, 2).
  assert metrics.centre_pixel(target, percentile=25) == (2, 2)


def test_centre_pixel_of_a_ring_breaks_ties_in_raster_order():
  # The perimeter of the 5x5 square rows 1..5, cols 1..5: medians (3, 3), the
  # hole. (1, 3), (3, 1), (3, 5), (5, 3) are all 2 away; (1, 3) comes first.
  target = np.zeros((7, 7), dtype=bool)
  target[1:6, 1:6] = True
  target[2:5, 2:5] = False
  assert metrics.centre_pixel(target) == (1, 3)


def test_centre_pixel_with_half_integer_medians():
  # Pixels (0, 0) and (0, 3): median col 1.5, both 1.5 away -> the first.
  assert metrics.centre_pixel(_mask((2, 4), (0, 0), (0, 3))) == (0, 0)


def test_one_pixel_and_majority_protocols_differ():
  # Target: the 5x5 block rows 2..6, cols 2..6 (25 px); its centre pixel is
  # (4, 4). Segment 2 is the 3x3 block rows 3..5, cols 3..5 (9 px) around
  # it; segment 1 the other 16 target pixels; segment 0 the rest.
  target = np.zeros((9, 9), dtype=np.uint8)
  target[2:7, 2:7] = 1
  labels = np.zeros((9, 9), dtype=np.int32)
  labels[2:7, 2:7] = 1
  labels[3:6, 3:6] = 2
  assert metrics.centre_pixel(target) == (4, 4)
  np.testing.assert_array_equal(metrics.one_pixel_selection(labels, target), labels == 2)
  np.testing.assert_array_equal(metrics.majority_selection(labels, target), labels == 1)
  # One pixel: 2 * 9 / (9 + 25) = 9/17. Majority: 2 * 16 / (16 + 25) = 32/41.
  assert metrics.dice_one_pixel(labels, target) == pytest.approx(9 / 17)
  assert metrics.dice_majority(labels, target) == pytest.approx(32 / 41)


def test_majority_ties_go_to_the_smallest_segment_id():
  labels = np.array([[5, 3], [0, 0]])
  target = np.array([[1, 1], [0, 0]])
  np.testing.assert_array_equal(metrics.majority_selection(labels, target), labels == 3)


@pytest.mark.parametrize("select", [metrics.one_pixel_selection, metrics.majority_selection,
                                    metrics.dice_one_pixel, metrics.dice_majority])
def test_selection_errors(select):
  labels = np.zeros((4, 4), dtype=np.int32)
  with pytest.raises(ValueError, match="empty"):
    select(labels, np.zeros((4, 4)))
  with pytest.raises(ValueError, match="shape"):
    select(labels, np.ones((4, 5)))
  with pytest.raises(ValueError, match="integer"):
    select(labels.astype(np.float32), np.ones((4, 4)))


def test_centre_pixel_of_an_empty_target_raises():
  with pytest.raises(ValueError, match="empty"):
    metrics.centre_pixel(np.zeros((3, 3)))


# ------------------------------------------------------------------ Hausdorff


def test_hausdorff_of_two_squares_three_pixels_apart():
  # 5x5 squares rows 2..6, A at cols 2..6, B at cols 5..9 (16 boundary px each).
  # A's boundary to B's: col 2 -> col 5: 3 (x5); rows 2/6 at cols 3, 4, 5, 6:
  # 2, 1, 0, 0 (x2 each); col 6, rows 3..5 -> col 5: 1 (x3). B to A mirrors it.
  # Pooled 32 values: 0 x8, 1 x10, 2 x4, 3 x10. HD = 3; the 95th percentile
  # sits at sorted position 0.95 * 31 = 29.45, between two 3s: HD95 = 3.
  a = np.zeros((12, 12), dtype=bool)
  a[2:7, 2:7] = True
  b = np.zeros((12, 12), dtype=bool)
  b[2:7, 5:10] = True
  assert metrics.hausdorff(a, b) == pytest.approx(3.0)
  assert metrics.hd95(a, b) == pytest.approx(3.0)


def test_hd95_ignores_a_single_outlier_pixel():
  # B is the 10x10 square rows/cols 0..9 (36 boundary px); A is B plus the
  # isolated pixel (4, 17), 8 px from B's boundary pixel (4, 9). Pooled
  # distances: 72 zeros and one 8. HD = 8; 95th percentile at position
  # 0.95 * 72 = 68.4 among zeros: HD95 = 0.
  b = np.zeros((20, 20), dtype=bool)
  b[0:10, 0:10] = True
  a = b.copy()
  a[4, 17] = True
  assert metrics.hausdorff(a, b) == pytest.approx(8.0)
  assert metrics.hausdorff(b, a) == pytest.approx(8.0)
  assert metrics.hd95(a, b) == pytest.approx(0.0)


def test_hausdorff_when_masks_are_empty():
  empty, one = np.zeros((5, 5)), _mask((5, 5), (2, 2))
  for measure in (metrics.hausdorff, metrics.hd95):
    assert measure(empty, empty) == 0.0
    assert measure(one, empty) == math.inf
    assert measure(empty, one) == math.inf
    with pytest.raises(ValueError, match="shape"):
      measure(one, np.ones((5, 6)))


def _brute_force_boundary(mask):
  padded = np.pad(mask, 1)
  neighbours_in = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
  return np.argwhere(mask & ~neighbours_in)


def test_hausdorff_matches_brute_force_on_random_blobs():
  rng = np.random.default_rng(3)
  for _ in range(3):
    a = rng.random((16, 16)) < 0.3
    b = rng.random((16, 16)) < 0.3
    pairwise = distance.cdist(_brute_force_boundary(a), _brute_force_boundary(b))
    directed = np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])
    assert metrics.hausdorff(a, b) == pytest.approx(directed.max())
    assert metrics.hd95(a, b) == pytest.approx(np.percentile(directed, 95))


def test_spacing_turns_distances_into_millimetres():
  # One-voxel-thick plates at i = 2 and i = 5 over all of (j, k): every
  # boundary voxel is 3 voxels along axis 0 from the other plate, and no
  # nearer voxel exists off that axis. With 2 mm along axis 0 that is 6 mm
  # whatever the other two spacings; distances along axis 0 ignore them.
  a = np.zeros((8, 5, 6), dtype=bool)
  a[2] = True
  b = np.zeros_like(a)
  b[5] = True
  for measure in (metrics.hausdorff, metrics.hd95, metrics.mean_surface_distance):
    assert measure(a, b) == pytest.approx(3.0)
    assert measure(a, b, spacing=(2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert measure(a, b, spacing=(2.0, 0.3, 7.0)) == pytest.approx(6.0)
    assert measure(a, b, spacing=0.5) == pytest.approx(1.5)
  # The same plates shifted along axis 1 instead: now axis 1's spacing counts.
  c, d = np.moveaxis(a, 0, 1), np.moveaxis(b, 0, 1)
  assert metrics.hd95(c, d, spacing=(2.0, 1.0, 1.0)) == pytest.approx(3.0)
  assert metrics.hd95(c, d, spacing=(1.0, 2.5, 1.0)) == pytest.approx(7.5)


def test_mean_surface_distance_of_a_square_and_an_outlier():
  # From test_hd95_ignores_a_single_outlier_pixel: 72 zero distances and one
  # of 8 px; with 0.5 mm rows and 2 mm columns the 8 px along a row are 16 mm.
  b = np.zeros((20, 20), dtype=bool)
  b[0:10, 0:10] = True
  a = b.copy()
  a[4, 17] = True
  assert metrics.mean_surface_distance(a, b) == pytest.approx(8.0 / 73)
  assert metrics.mean_surface_distance(a, b, spacing=(0.5, 2.0)) == pytest.approx(16.0 / 73)
  assert metrics.hausdorff(a, b, spacing=(0.5, 2.0)) == pytest.approx(16.0)


def test_distances_match_brute_force_in_3d_with_anisotropic_spacing():
  rng = np.random.default_rng(4)
  spacing = np.array([2.5, 0.8, 1.2])
  structure = np.zeros((3, 3, 3), dtype=bool)
  structure[1, 1, :] = structure[1, :, 1] = structure[:, 1, 1] = True
  for _ in range(2):
    # Small blobs in a larger volume, so the bounding-box crop is exercised.
    a, b = np.zeros((14, 20, 18), bool), np.zeros((14, 20, 18), bool)
    a[3:9, 4:12, 5:11] = rng.random((6, 8, 6)) < 0.5
    b[5:11, 6:14, 2:10] = rng.random((6, 8, 8)) < 0.5
    boundaries = []
    for mask in (a, b):
      padded = np.pad(mask, 1)
      inside = np.ones_like(mask)
      for offset in np.argwhere(structure) - 1:
        if offset.any():
          inside &= padded[tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, mask.shape))]
      boundaries.append(np.argwhere(mask & ~inside) * spacing)
    pairwise = distance.cdist(*boundaries)
    pooled = np.concatenate([pairwise.min(axis=1), pairwise.min(axis=0)])
    assert metrics.hausdorff(a, b, spacing=spacing) == pytest.approx(pooled.max())
    assert metrics.hd95(a, b, spacing=spacing) == pytest.approx(np.percentile(pooled, 95))
    assert metrics.mean_surface_distance(a, b, spacing=spacing) == pytest.approx(pooled.mean())


def test_spacing_is_checked():
  a = _mask((4, 4), (1, 1))
  for spacing in ((1.0, 0.0), (1.0, 1.0, 1.0), -2.0, (1.0, float("nan")), "1"):
    with pytest.raises(ValueError, match="spacing"):
      metrics.hd95(a, a, spacing=spacing)


def test_centre_pixel_of_a_volume():
  # Voxels (0, 0, 0), (2, 2, 2), (2, 2, 4): medians (2, 2, 2), itself a voxel.
  target = _mask((3, 3, 5), (0, 0, 0), (2, 2, 2), (2, 2, 4))
  assert metrics.centre_pixel(target) == (2, 2, 2)
  # Medians (1, 1, 1) of (0, 0, 0) and (2, 2, 2): both equally near; raster order wins.
  assert metrics.centre_pixel(_mask((3, 3, 3), (0, 0, 0), (2, 2, 2))) == (0, 0, 0)
  with pytest.raises(ValueError, match="2-D"):
    metrics.centre_pixel(np.ones((2, 2, 2, 2)))


# ------------------------------------------------------------------ patch similarity


def _two_texture_image(size=48, seed=0):
  # Left half: flat grey 0.2; right half: uniform noise. Labels follow them.
  rng = np.random.default_rng(seed)
  image = np.full((size, size, 3), 0.2)
  image[:, size // 2:] = rng.random((size, size - size // 2, 3))
  labels = np.zeros((size, size), dtype=np.int32)
  labels[:, size // 2:] = 1
  return image, labels


def test_patch_similarity_is_higher_within_matching_segments():
  # Flat-flat pairs have SSIM 1 and RMSE 0, noise-noise pairs SSIM ~ 0; mixed
  # pairs SSIM ~ 0 and RMSE ~ sqrt(1/12 + 0.3^2) ~ 0.42. Patches that straddle
  # the border and noise-noise pairs pull the within average well below 1.
  image, labels = _two_texture_image()
  result = metrics.segment_patch_similarity(image, labels, num_pixels=60, patch_size=7, seed=0)
  assert result["ssim_within"] > result["ssim_between"] + 0.1
  assert result["rmse_within"] < result["rmse_between"]
  assert result["ergas_within"] < result["ergas_between"]
  assert result["num_pairs_within"] + result["num_pairs_between"] == 60 * 59 // 2
  assert set(result) == {"ssim_within", "ergas_within", "rmse_within", "ssim_between",
                         "ergas_between", "rmse_between", "num_pairs_within",
                         "num_pairs_between"}


@pytest.mark.parametrize("patch_size, window, channels, data_range",
                         [(7, None, 3, 1.0), (9, 5, 1, 1.0), (7, 7, 3, 2.0)])
def test_pairwise_ssim_matches_skimage(patch_size, window, channels, data_range):
  rng = np.random.default_rng(1)
  image = rng.random((24, 24, channels)) ** 2
  _, patches = metrics.sample_patches(image, num_pixels=6, patch_size=patch_size, seed=2)
  measures = metrics.pairwise_patch_measures(patches, ssim_window=window,
                                             ssim_data_range=data_range)
  for i, j in itertools.combinations(range(6), 2):
    expected = structural_similarity(patches[i], patches[j], data_range=data_range,
                                     win_size=window or min(7, patch_size), channel_axis=-1)
    assert measures["ssim"][i, j] == pytest.approx(expected, abs=1e-10)
    assert measures["ssim"][j, i] == pytest.approx(expected, abs=1e-10)


def test_pairwise_ergas_and_rmse_of_flat_patches():
  # Patch 0: channels 0.5 and 0.25; patch 1: both 0.25 (3x3, two channels).
  # Per-channel RMSE (0.25, 0). Reference 0: ratios (0.25/0.5, 0/0.25) =
  # (0.5, 0): 100 sqrt((0.25 + 0) / 2) = 35.355. Reference 1: (0.25/0.25, 0):
  # 100 sqrt(1 / 2) = 70.711. RMSE: sqrt((0.0625 + 0) / 2) = 0.17678.
  patches = np.zeros((2, 3, 3, 2))
  patches[0, ..., 0], patches[0, ..., 1] = 0.5, 0.25
  patches[1] = 0.25
  measures = metrics.pairwise_patch_measures(patches)
  assert measures["ergas"][0, 1] == pytest.approx(100 * math.sqrt(0.125))
  assert measures["ergas"][1, 0] == pytest.approx(100 * math.sqrt(0.5))
  assert measures["rmse"][0, 1] == pytest.approx(math.sqrt(0.03125))
  np.testing.assert_allclose(np.diag(measures["ergas"]), 0.0)
  # A black reference patch divides by the epsilon: 100 * 0.25 / 1e-3.
  black = np.stack([np.zeros((3, 3, 1)), np.full((3, 3, 1), 0.25)])
  measures = metrics.pairwise_patch_measures(black, ergas_epsilon=1e-3)
  assert measures["ergas"][0, 1] == pytest.approx(100 * 0.25 / 1e-3)


def test_segment_patch_similarity_matches_a_pair_by_pair_reference():
  rng = np.random.default_rng(4)
  image = rng.random((20, 20, 3))
  labels = rng.integers(0, 3, (20, 20))
  num = 12
  result = metrics.segment_patch_similarity(image, labels, num_pixels=num, patch_size=5, seed=7)
  centres, patches = metrics.sample_patches(image, num_pixels=num, patch_size=5, seed=7)

  def ergas(reference, other):  # Wald with h/l = 1, per-channel means of the reference.
    rmse_c = np.sqrt(np.mean((reference - other)**2, axis=(0, 1)))
    return 100 * np.sqrt(np.mean((rmse_c / reference.mean(axis=(0, 1)))**2))

  sums = {key: [] for key in result if not key.startswith("num")}
  for i, j in itertools.combinations(range(num), 2):
    where = "within" if labels[tuple(centres[i])] == labels[tuple(centres[j])] else "between"
    sums[f"ssim_{where}"].append(structural_similarity(
        patches[i], patches[j], data_range=1, win_size=5, channel_axis=-1))
    sums[f"ergas_{where}"].append(0.5 * (ergas(patches[i], patches[j])
                                         + ergas(patches[j], patches[i])))
    sums[f"rmse_{where}"].append(np.sqrt(np.mean((patches[i] - patches[j])**2)))
  for key, values in sums.items():
    assert result[key] == pytest.approx(np.mean(values), rel=1e-9), key
  assert result["num_pairs_within"] == len(sums["ssim_within"])


def test_sample_patches_is_deterministic_and_patches_fit():
  image = np.random.default_rng(0).random((15, 11))
  centres, patches = metrics.sample_patches(image, num_pixels=20, patch_size=5, seed=3)
  again, _ = metrics.sample_patches(image, num_pixels=20, patch_size=5, seed=3)
  other, _ = metrics.sample_patches(image, num_pixels=20, patch_size=5, seed=4)
  np.testing.assert_array_equal(centres, again)
  assert not np.array_equal(centres, other)
  assert len(np.unique(centres, axis=0)) == 20  # Without replacement.
  assert centres[:, 0].min() >= 2 and centres[:, 0].max() <= 12
  assert centres[:, 1].min() >= 2 and centres[:, 1].max() <= 8
  assert patches.shape == (20, 5, 5, 1)
  row, col = centres[0]
  np.testing.assert_array_equal(patches[0, ..., 0], image[row - 2:row + 3, col - 2:col + 3])


def test_patch_similarity_is_nan_without_pairs_between_segments():
  image, _ = _two_texture_image(size=16)
  result = metrics.segment_patch_similarity(image, np.zeros((16, 16), dtype=np.int32),
                                            num_pixels=5, patch_size=3, seed=0)
  assert result["num_pairs_between"] == 0 and result["num_pairs_within"] == 10
  assert math.isnan(result["ssim_between"]) and math.isnan(result["ergas_between"])
  assert math.isfinite(result["ssim_within"])


def test_patch_similarity_errors():
  image, labels = _two_texture_image(size=16)
  with pytest.raises(ValueError, match="odd"):
    metrics.segment_patch_similarity(image, labels, num_pixels=5, patch_size=4)
  with pytest.raises(ValueError, match="num_pixels"):
    metrics.segment_patch_similarity(image, labels, num_pixels=200, patch_size=5)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    metrics.segment_patch_similarity(image * 255, labels, num_pixels=5, patch_size=5)
  with pytest.raises(ValueError, match="must match"):
    metrics.segment_patch_similarity(image, labels[:, :8], num_pixels=5, patch_size=5)
  with pytest.raises(ValueError, match="ssim_window"):
    metrics.segment_patch_similarity(image, labels, num_pixels=5, patch_size=5, ssim_window=7)


# ------------------------------------------------------------------ BSDS500 measures

# Prediction [0 0 1 1] against the human [0 1 1 1] (pixels p0..p3).
_SEG = np.array([[0, 0, 1, 1]])
_HUMAN = np.array([[0, 1, 1, 1]])


def test_rand_index_of_a_1x4_map():
  # 6 pairs: p0p1 same/diff (disagree), p0p2 diff/diff, p0p3 diff/diff,
  # p1p2 diff/same (disagree), p1p3 diff/same (disagree), p2p3 same/same.
  # RI = 3/6. A second human equal to the prediction has RI = 1: PRI = 0.75.
  assert metrics.probabilistic_rand_index(_SEG, [_HUMAN]) == pytest.approx(0.5)
  assert metrics.probabilistic_rand_index(_SEG, [_HUMAN, _SEG]) == pytest.approx(0.75)
  # A single 2-D array is one human.
  assert metrics.probabilistic_rand_index(_SEG, _HUMAN) == pytest.approx(0.5)


def test_variation_of_information_of_a_1x4_map():
  # Joint p: (0,0) 1/4, (0,1) 1/4, (1,1) 1/2: H(joint) = 1.5 bits.
  # H(seg) = 1; H(human) = 1/4 log2 4 + 3/4 log2 4/3 = 2 - 3/4 log2 3.
  # VoI = 2 H(joint) - H(seg) - H(human) = 3/4 log2 3 ~ 1.189 bits (0.824 nats).
  assert metrics.variation_of_information(_SEG, [_HUMAN]) == pytest.approx(0.75 * math.log2(3))
  assert metrics.variation_of_information(_SEG, [_HUMAN, _SEG]) == pytest.approx(
      0.375 * math.log2(3))
  # skimage returns both conditional entropies in bits, as BSDS500's benchmark does.
  assert metrics.variation_of_information(_SEG, [_HUMAN]) == pytest.approx(
      np.sum(skimage_voi(_SEG, _HUMAN)))


def test_segmentation_covering_of_a_1x4_map_covers_the_human():
  # Human regions {p0} (1 px) and {p1, p2, p3} (3 px); predicted {p0, p1}, {p2, p3}.
  # {p0}: best IoU with {p0, p1} = 1/2. {p1..p3}: with {p0, p1} 1/4, with
  # {p2, p3} 2/3 -> 2/3. Covering = (1 * 1/2 + 3 * 2/3) / 4 = 0.625.
  # (The other direction would give (2 * 1/2 + 2 * 2/3) / 4 = 0.5833.)
  assert metrics.segmentation_covering(_SEG, [_HUMAN]) == pytest.approx(0.625)
  assert metrics.segmentation_covering(_SEG, [_HUMAN, _SEG]) == pytest.approx(0.8125)


def test_bsds_measures_of_a_2x2_map():
  # Prediction splits rows, the human splits columns. Same-segment pairs:
  # prediction {p00 p01}, {p10 p11}; human {p00 p10}, {p01 p11}; no pair is
  # same in both; the 2 diagonal pairs differ in both: RI = 2/6.
  # Independent halves: VoI = H + H - 2 * 0 = 2 bits.
  # Each human region meets each predicted one in 1 px of a 3-px union: 1/3.
  prediction = np.array([[4, 4], [9, 9]])
  human = np.array([[1, 2], [1, 2]])
  assert metrics.probabilistic_rand_index(prediction, [human]) == pytest.approx(1 / 3)
  assert metrics.variation_of_information(prediction, [human]) == pytest.approx(2.0)
  assert metrics.segmentation_covering(prediction, [human]) == pytest.approx(1 / 3)


def test_bsds_measures_of_identical_maps_and_relabelling():
  labels = np.random.default_rng(0).integers(0, 5, (9, 7))
  relabelled = labels * 10 - 7  # Same partition, other ids.
  assert metrics.probabilistic_rand_index(labels, [relabelled]) == pytest.approx(1.0)
  assert metrics.variation_of_information(labels, [relabelled]) == pytest.approx(0.0, abs=1e-12)
  assert metrics.segmentation_covering(labels, [relabelled]) == pytest.approx(1.0)


def test_rand_index_matches_pair_enumeration():
  rng = np.random.default_rng(5)
  labels = rng.integers(0, 4, (5, 6))
  humans = [rng.integers(0, k, (5, 6)) for k in (2, 3, 6)]
  flat = labels.ravel()
  expected = []
  for human in humans:
    h = human.ravel()
    agree = [(flat[i] == flat[j]) == (h[i] == h[j])
             for i, j in itertools.combinations(range(flat.size), 2)]
    expected.append(np.mean(agree))
  assert metrics.probabilistic_rand_index(labels, humans) == pytest.approx(np.mean(expected))


def test_rand_index_with_many_segments_on_both_sides():
  # One segment per pixel against segments of two pixels: a dense table would
  # hold N * N / 2 entries. Only the N / 2 pairs that share a human segment
  # disagree: RI = 1 - (N / 2) / C(N, 2).
  labels = np.arange(300 * 200).reshape(300, 200)
  human = labels // 2
  n = labels.size
  expected = 1 - (n / 2) / (n * (n - 1) / 2)
  assert metrics.probabilistic_rand_index(labels, [human]) == pytest.approx(expected, abs=1e-12)
  assert metrics.segmentation_covering(labels, [human]) == pytest.approx(0.5)


def test_bsds_measures_reject_mismatched_shapes():
  for measure in (metrics.probabilistic_rand_index, metrics.variation_of_information,
                  metrics.segmentation_covering):
    with pytest.raises(ValueError, match="upsample_labels"):
      measure(np.zeros((4, 4), dtype=np.int32), [np.zeros((8, 8), dtype=np.int32)])
    with pytest.raises(ValueError, match="at least one"):
      measure(np.zeros((4, 4), dtype=np.int32), [])


def test_upsample_labels_is_centre_aligned_nearest_neighbour():
  labels = np.array([[1, 2], [3, 4]], dtype=np.int32)
  np.testing.assert_array_equal(metrics.upsample_labels(labels, (4, 4)),
                                np.kron(labels, np.ones((2, 2), dtype=np.int32)))
  # Output i takes input floor((i + 0.5) * 2 / n): rows (n=3) 0, 1, 1;
  # cols (n=5) 0, 0, 1, 1, 1.
  np.testing.assert_array_equal(metrics.upsample_labels(labels, (3, 5)),
                                [[1, 1, 2, 2, 2], [3, 3, 4, 4, 4], [3, 3, 4, 4, 4]])
  assert metrics.upsample_labels(labels, (3, 5)).dtype == np.int32


def test_bsds_measures_on_a_real_image():
  path = shared_data("bsds500/groundTruth/val/101085.mat")
  cells = scipy.io.loadmat(path)["groundTruth"][0]
  humans = [np.asarray(cell["Segmentation"][0, 0], dtype=np.int32) for cell in cells]
  first = humans[0]
  assert metrics.probabilistic_rand_index(first, [first]) == pytest.approx(1.0)
  assert metrics.segmentation_covering(first, [first]) == pytest.approx(1.0)
  # A 128x128 prediction brought to the humans' resolution; one segment
  # everywhere covers each human region R by |R| / N.
  prediction = metrics.upsample_labels(np.zeros((128, 128), dtype=np.int32), first.shape)
  expected = np.mean([np.sum((np.bincount(h.ravel()) / h.size)**2) for h in humans])
  assert metrics.segmentation_covering(prediction, humans) == pytest.approx(expected)
  assert 0.0 < metrics.probabilistic_rand_index(prediction, humans) < 1.0
