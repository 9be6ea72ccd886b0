"""The scale stack and the region a click means: rules, negative clicks, small pieces, 3-D."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

import cuts_jax
from cuts_jax import regions
from cuts_jax import scales
from cuts_jax.scales import _choosing as scales_choosing
from cuts_jax import segment_settings


def _stack(**options) -> scales.ScaleStack:
  # 8 x 8: level k=1 one segment; k=2 left/right halves; k=3 splits the right half's top and
  # bottom; k=4 cuts the right top in two columns.
  levels = np.zeros((4, 8, 8), np.int32)
  levels[1, :, 4:] = 1
  levels[2, :, 4:] = 1
  levels[2, 4:, 4:] = 2
  levels[3] = levels[2]
  levels[3, :4, 6:] = 3
  return scales.ScaleStack(labels=levels, num_clusters=(1, 2, 3, 4), **options)


def test_each_rule_picks_its_level_without_labels():
  stack = _stack()
  quarter = np.zeros((8, 8), bool)
  quarter[:4, 4:] = True
  eighth = np.zeros((8, 8), bool)
  eighth[:4, 4:6] = True
  # Level 1 (a half) covers over 25% of the image; the right-top quarter (k=3) and its left
  # part (k=4) remain: their vote agrees as well with either, and ties keep the smaller.
  np.testing.assert_array_equal(cuts_jax.select(stack, (1, 5), rule="consensus"), eighth)
  np.testing.assert_array_equal(scales.choose_region(stack, (1, 5), rule="consensus"), eighth)
  # The two agree equally with their neighbours; stability keeps the coarser (the default).
  assert stack.rule == "stability"
  np.testing.assert_array_equal(cuts_jax.select(stack, (1, 5)), quarter)
  np.testing.assert_array_equal(cuts_jax.select(stack, (1, 5), rule=3), quarter)
  np.testing.assert_array_equal(cuts_jax.select(stack, (1, 5), rule=2),
                                np.tile(np.arange(8) >= 4, (8, 1)))
  # With a looser size limit the half joins the vote: the quarter agrees best with all three.
  np.testing.assert_array_equal(cuts_jax.select(stack, (1, 5), rule="consensus", max_fraction=0.5),
                                quarter)
  for rule in scales.RULES:
    mask = cuts_jax.select(stack, (1, 5), rule=rule)
    assert mask[1, 5] and mask.sum() <= 32, rule


def test_a_negative_click_moves_the_choice_to_a_finer_level_rather_than_dropping_it():
  stack = _stack(rule="fixed", fixed_clusters=2)
  # At k=2 the click and the negative click share the right half; k=3 splits them.
  mask = cuts_jax.select(stack, (1, 5), negative=(6, 6))
  expected = np.zeros((8, 8), bool)
  expected[:4, 4:] = True
  np.testing.assert_array_equal(mask, expected)
  # Even the finest level holds both: the segment is split between the clicks.
  split = cuts_jax.select(stack, (1, 4), negative=(1, 5))
  assert split[1, 4] and not split[1, 5] and split.sum() > 0


def test_positive_clicks_add_their_regions_on_stacks_and_flat_maps():
  stack = _stack(rule="fixed", fixed_clusters=3)
  union = cuts_jax.select(stack, (1, 1)) | cuts_jax.select(stack, (6, 6))
  # The second segment (16 px) is half the first click's mask (32 px): within grow=0.5 it is
  # added whole; the former modes add it in any case.
  np.testing.assert_array_equal(cuts_jax.select(stack, [(1, 1), (6, 6)], grow=0.5), union)
  np.testing.assert_array_equal(cuts_jax.select(stack, [(1, 1), (6, 6)], negatives="both"),
                                union)
  flat = stack.labels[2]
  # A flat map's segments are picked whole by default (the user sees them).
  np.testing.assert_array_equal(cuts_jax.select(flat, [(1, 1), (6, 6)]), (flat == 0) | (flat == 2))
  assert cuts_jax.select(flat, [(1, 1), (6, 6)], negatives="bounded").sum() < 48
  # A negative click inside a clicked flat segment splits it (nearest click), nothing more.
  mask = cuts_jax.select(flat, (0, 0), negative=(0, 3))
  assert mask[0, 0] and not mask[0, 3] and not mask[:, 4:].any()


def _square_in_background(size: int = 40) -> scales.ScaleStack:
  # One level: a 10 x 10 square (label 1) in a background that takes the rest.
  labels = np.zeros((1, size, size), np.int32)
  labels[0, 10:20, 10:20] = 1
  return scales.ScaleStack(labels=labels, num_clusters=(2,), rule="fixed", fixed_clusters=2)


def test_one_click_is_the_same_in_every_multi_click_mode():
  for stack in (_stack(), _stack(rule="consensus"), _square_in_background()):
    for click in [(1, 5), (6, 1), (3, 6)]:
      masks = [cuts_jax.select(stack, click, negatives=mode) for mode in scales.NEGATIVE_MODES]
      for mask in masks[1:]:
        np.testing.assert_array_equal(mask, masks[0])


def test_a_later_click_beside_the_mask_corrects_it_locally_not_with_the_background():
  stack = _square_in_background()
  square = stack.labels[0] == 1
  # A positive click 2 px outside the square: its segment is the background, 15 times the mask.
  bounded = cuts_jax.select(stack, [(15, 15), (15, 21)])
  added = bounded & ~square
  assert bounded[square].all() and bounded[15, 21]
  assert 0 < added.sum() <= 0.25 * square.sum() + 1
  rows, cols = np.nonzero(added)
  assert np.hypot(rows - 15, cols - 21).max() <= 2 * 2 + 1  # Within twice its distance.
  assert cuts_jax.select(stack, [(15, 15), (15, 21)], negatives="both").sum() == 40 * 40
  # A negative click inside the square, which no level splits: a local cut, not half of it.
  cut = cuts_jax.select(stack, (12, 12), negative=(17, 17))
  assert cut[12, 12] and not cut[17, 17]
  assert 0.5 * square.sum() <= cut.sum() < square.sum() and not (cut & ~square).any()
  # The same in 3-D: a ball, not a disc, around a voxel beside a 6 x 6 x 6 cube.
  volume = np.zeros((1, 16, 16, 16), np.int32)
  volume[0, 4:10, 4:10, 4:10] = 1
  cube = scales.ScaleStack(labels=volume, num_clusters=(2,), rule="fixed", fixed_clusters=2)
  grown = cuts_jax.select(cube, [(6, 6, 6), (6, 6, 12)])
  assert grown[volume[0] == 1].all() and grown[6, 6, 12]
  assert 1 < (grown & (volume[0] == 0)).sum() <= 0.25 * 216 + 1
  # A second structure apart from the mask, smaller than it, is added whole.
  labels = stack.labels.copy()
  labels[0, 28:34, 28:36] = 2
  apart = scales.ScaleStack(labels=labels, num_clusters=(2,), rule="fixed", fixed_clusters=2)
  np.testing.assert_array_equal(cuts_jax.select(apart, [(15, 15), (30, 30)]),
                                (labels[0] == 1) | (labels[0] == 2))


def test_after_every_click_positive_pixels_are_in_and_negative_pixels_out():
  rng = np.random.default_rng(0)
  for trial in range(6):
    # Random nested-or-not label maps: nearest of k random seeds, k = 2, 4, 8.
    points = np.stack(np.meshgrid(np.arange(24), np.arange(24), indexing="ij"), -1)
    levels = []
    for k in (2, 4, 8):
      seeds = rng.uniform(0, 24, (k, 2))
      distance = ((points[:, :, None, :] - seeds[None, None]) ** 2).sum(-1)
      levels.append(np.argmin(distance, axis=-1))
    stack = scales.ScaleStack(labels=np.stack(levels), num_clusters=(2, 4, 8),
                              rule=scales.RULES[trial % len(scales.RULES)], max_fraction=0.5)
    picked = rng.choice(24 * 24, 7, replace=False)
    clicks = [tuple(int(i) for i in np.unravel_index(p, (24, 24))) for p in picked]
    signs = [True] + list(rng.random(6) < 0.5)
    for mode in scales.NEGATIVE_MODES:
      for count in range(1, len(clicks) + 1):
        positive = [c for c, s in zip(clicks[:count], signs) if s]
        negative = [c for c, s in zip(clicks[:count], signs) if not s]
        mask = cuts_jax.select(stack, positive, negative=negative, negatives=mode)
        assert all(mask[c] for c in positive), (trial, mode, count)
        assert not any(mask[c] for c in negative), (trial, mode, count)


def test_a_small_clicked_piece_is_kept_not_folded_away():
  labels = np.zeros((1, 10, 10), np.int32)
  pieces = np.zeros((1, 10, 10), np.int32)
  pieces[0, 4:6, 4:6] = 1  # 4 px, folded into the background in `labels`.
  stack = scales.ScaleStack(labels=labels, num_clusters=(2,), pieces=pieces, folded_below=5)
  np.testing.assert_array_equal(cuts_jax.select(stack, (4, 4)), pieces[0] == 1)
  assert cuts_jax.select(stack, (0, 0)).sum() == 100  # The background and what it swallowed.
  # The same stack without the fold threshold answers with the segment.
  plain = scales.ScaleStack(labels=labels, num_clusters=(2,), pieces=pieces)
  assert cuts_jax.select(plain, (4, 4)).sum() == 100
  # Below the stack's smallest kept piece (`min_kept`), a clicked piece is a speck: the click
  # takes the segment it was folded into.
  floored = scales.ScaleStack(labels=labels, num_clusters=(2,), pieces=pieces, folded_below=5,
                              min_kept=5)
  assert cuts_jax.select(floored, (4, 4)).sum() == 100


def test_three_dimensional_stacks_and_volumes_take_voxels():
  volume = np.zeros((2, 4, 6, 6), np.int32)
  volume[1, :, :, 3:] = 1
  volume[1, 2:, :, 3:] = 2  # Level 1 splits the right part along axis 0.
  stack = scales.ScaleStack(labels=volume, num_clusters=(1, 3), rule="fixed", fixed_clusters=3)
  mask = cuts_jax.select(stack, (0, 1, 4), negative=[(3, 1, 4)])
  assert mask.shape == (4, 6, 6) and mask[0, 1, 4] and not mask[3, 1, 4]
  assert mask.sum() == 2 * 6 * 3
  np.testing.assert_array_equal(cuts_jax.select(volume[1], (0, 1, 4)), volume[1] == 1)
  with pytest.raises(ValueError, match="is a pixel .* volume's"):
    cuts_jax.select(stack, (0, 1))
  with pytest.raises(ValueError, match="is a voxel .* image's"):
    cuts_jax.select(volume[1, 0], [(0, 1, 2)])


@pytest.mark.parametrize("clicks, negative, message", [
    ((8, 1), (), "outside"), ((1, -1), (), "negative entry"), ([], (), "no pixel"),
    ((1, 1), [(1, 1)], "both positive and negative"), ((1, 2.5), (), "two integers"),
    ((1, 1), [(9, 9)], "negative pixel .* outside"),
])
def test_bad_clicks_are_refused_clearly(clicks, negative, message):
  for segments in (_stack(), _stack().labels[2]):
    with pytest.raises(ValueError, match=message):
      cuts_jax.select(segments, clicks, negative=negative)


def test_the_former_persistent_level_means_the_stacks_own_choice():
  # Code written against the former hierarchy asks for level="persistent": it gets the
  # label-free region of the stack's rule, as with no level; other names are refused.
  stack = _stack()
  np.testing.assert_array_equal(cuts_jax.select(stack, (1, 5), level="persistent"),
                                cuts_jax.select(stack, (1, 5)))
  with pytest.raises(ValueError, match="level"):
    cuts_jax.select(stack, (1, 5), level="coarsest")


def test_bad_options_are_refused():
  with pytest.raises(ValueError, match="scale rule"):
    cuts_jax.select(_stack(), (1, 1), rule="persistent")
  with pytest.raises(ValueError, match="max_fraction"):
    cuts_jax.select(_stack(), (1, 1), max_fraction=0)
  with pytest.raises(ValueError, match="grow"):
    cuts_jax.select(_stack(), (1, 1), grow=0)
  with pytest.raises(ValueError, match="shrink"):
    cuts_jax.select(_stack().labels[2], (1, 1), shrink=1.5)
  with pytest.raises(ValueError, match="negatives mode"):
    cuts_jax.select(_stack(), (1, 1), negatives="replace")
  with pytest.raises(ValueError, match="level"):
    cuts_jax.select(_stack(), (1, 1), level=4)
  with pytest.raises(ValueError, match="ScaleStack"):
    cuts_jax.select(_stack().labels[0], (1, 1), rule="consensus")
  with pytest.raises(ValueError, match="entries"):
    scales.ScaleStack(labels=np.zeros((2, 4, 4), int), num_clusters=(2,))
  with pytest.raises(ValueError, match="pieces"):
    scales.ScaleStack(labels=np.zeros((1, 4, 4), int), num_clusters=(2,),
                      pieces=np.zeros((1, 4, 5), int))


def test_segment_hierarchy_clusters_one_image_at_every_k(tiny_workdir):
  params = cuts_jax.load(tiny_workdir)
  image = np.random.default_rng(0).random((40, 36, 3))
  stack = cuts_jax.segment_hierarchy(params, image, scale_num_clusters=(3, 5, 2))
  assert isinstance(stack, cuts_jax.ScaleStack) and stack.num_clusters == (2, 3, 5)
  assert stack.labels.shape == (3, 40, 36) and stack.pieces.shape == (3, 40, 36)
  assert stack.rule == params.settings.scale_rule
  assert stack.folded_below == params.settings.fold_threshold(32 * 32)
  # Each level is segment's own label map at that k, snapped or not.
  np.testing.assert_array_equal(stack.labels[2], cuts_jax.segment(params, image, num_clusters=5))
  plain = cuts_jax.segment_hierarchy(params, image, scale_num_clusters=(3, 5, 2), snap_scale=0)
  np.testing.assert_array_equal(plain.labels[2],
                                cuts_jax.segment(params, image, num_clusters=5, snap_scale=0))
  assert not np.array_equal(plain.labels, stack.labels)  # The default snaps.
  # Features computed once give the same stacks, given the same superpixels.
  prepared = cuts_jax.features.image_to_segment(params, image)
  features = cuts_jax.segmentation.image_features(params, image)
  superpixels = scales.image_superpixels(prepared, params.settings.snap_scale)
  again = scales.scale_stack(params, features, size=(40, 36), scale_num_clusters=(2, 3, 5),
                             superpixels=superpixels)
  np.testing.assert_array_equal(again.labels, stack.labels)
  again = scales.scale_stack(params, features, size=(40, 36), scale_num_clusters=(2, 3, 5))
  np.testing.assert_array_equal(again.labels, plain.labels)
  mask = cuts_jax.select(stack, [(5, 5), (30, 30)], negative=(20, 20))
  assert mask[5, 5] and mask[30, 30] and not mask[20, 20]


def test_snapped_levels_follow_the_superpixels_edges():
  # Two noisy flat halves (edge at column 16) and a clustering whose border is 6 px off it:
  # every superpixel takes the label of most of its pixels, which moves the border towards
  # the edge, and a stack's levels are made of whole superpixels.
  rng = np.random.default_rng(0)
  image = np.zeros((32, 32, 1))
  image[:, 16:] = 1.0
  image = np.clip(image + 0.05 * rng.standard_normal(image.shape), 0, 1)
  superpixels = scales.image_superpixels(image, 32.0)
  assert not set(np.unique(superpixels[:, :14])) & set(np.unique(superpixels[:, 18:]))
  truth = np.zeros((32, 32), np.int32)
  truth[:, 16:] = 1
  blurred = np.zeros((32, 32), np.int32)
  blurred[:, 10:] = 1
  snapped = scales.snap_to_superpixels(blurred, superpixels)
  assert (snapped != truth).sum() < (blurred != truth).sum() // 2
  features = np.repeat(np.clip((np.arange(32) - 6.0) / 8.0, 0, 1)[None, :, None], 32, axis=0)
  features = features + 0.01 * rng.standard_normal((32, 32, 1))
  for given in (None, superpixels):
    stack = scales.stack_from_features(features, num_clusters=(2, 3), method="kmeans",
                                       superpixels=given, min_size=20)
    whole = all(len(np.unique(level[superpixels == number])) == 1
                for level in stack.labels for number in np.unique(superpixels))
    assert whole == (given is not None)
  with pytest.raises(ValueError, match="superpixels"):
    scales.stack_from_features(features, num_clusters=(2,), superpixels=superpixels[:8])


@pytest.mark.parametrize("value", [-1.0, float("nan"), True, "32"])
def test_a_bad_snapping_scale_is_refused(value):
  with pytest.raises(ValueError, match="snap_scale"):
    segment_settings.SegmentSettings(snap_scale=value)
  assert segment_settings.SegmentSettings(snap_scale=0).snap_scale is None


def test_the_fold_threshold_in_pixels_replaces_the_share():
  settings = segment_settings.SegmentSettings(min_segment_fraction=0.01)
  assert settings.fold_threshold(10_000) == 100
  assert segment_settings.SegmentSettings(min_segment_pixels=30).fold_threshold(10_000) == 30


def _blocky_3d_stack(seed: int, *, min_size: int = 4, scale: int = 1, shift: int = 0,
                     **options) -> scales.ScaleStack:
  """Four levels of random blocky 3-D segments (8 x 10 x 9), with their pieces."""
  rng = np.random.default_rng(seed)
  labels, pieces = [], []
  for k in (2, 3, 5, 8):
    blocks = np.kron(rng.integers(0, k, (4, 5, 5)), np.ones((2, 2, 2), int))[:, :, :9]
    piece_map, segment_map = regions.pieces_and_segments(blocks, min_size=min_size)
    labels.append(segment_map * scale + shift)
    pieces.append(piece_map * scale + shift)
  return scales.ScaleStack(labels=np.stack(labels), num_clusters=(2, 3, 5, 8),
                           pieces=np.stack(pieces), folded_below=min_size, **options)


def _random_clicks(rule: str, *, seeds: int, first_rng_seed: int, draws: int, count: int):
  """(seed, blocky stack, up to `count` distinct random voxels of it, the generator they came
  from), `draws` per stack."""
  for seed in range(seeds):
    stack = _blocky_3d_stack(seed, rule=rule)
    rng = np.random.default_rng(first_rng_seed + seed)
    for _ in range(draws):
      yield seed, stack, list(dict.fromkeys(tuple(int(rng.integers(0, n)) for n in stack.shape)
                                            for _ in range(count))), rng


@pytest.mark.parametrize("rule", scales.RULES)
def test_a_click_drawn_in_its_box_picks_what_the_full_levels_pick(rule):
  # The fast path reads sizes and boxes from the stack's index and draws only the compared
  # regions in their common box; the full path draws every level's region over the volume.
  for seed, stack, points, _ in _random_clicks(rule, seeds=4, first_rng_seed=100, draws=6,
                                               count=2):
    if len(points) < 2:
      continue
    click, other = points
    for fraction in (0.02, 0.1, 0.3, 1.0):
      for negative in ((), (other,)):
        full = scales_choosing._clicked_regions(stack, click, connected=False)
        expected = scales_choosing._choose(full, stack, click, negative, rule=rule,
                                           max_fraction=fraction, fixed_clusters=3)
        got = scales_choosing._region_for_click(stack, click, negative, rule=rule,
                                                max_fraction=fraction, fixed_clusters=3,
                                                connected=False)
        np.testing.assert_array_equal(got, expected, err_msg=f"{seed} {click} {fraction}")


@pytest.mark.parametrize("rule", scales.RULES)
def test_later_clicks_edited_in_boxes_match_levels_drawn_in_full(rule):
  # The blocky stack's segments and pieces are connected, so drawing every level's region over
  # the volume (connected=True) gives the same regions as the index's boxes: every edit of a
  # mask, through a level or locally, must come out the same both ways.
  for seed, stack, points, rng in _random_clicks(rule, seeds=3, first_rng_seed=200, draws=8,
                                                 count=5):
    split = int(rng.integers(2, len(points))) if len(points) > 2 else len(points)
    positive, negative = points[:split], points[split:]
    for grow, shrink in ((0.25, 0.5), (0.02, 0.02), (1.0, 1.0)):
      options = dict(negative=negative, grow=grow, shrink=shrink, max_fraction=0.3,
                     fixed_clusters=3)
      np.testing.assert_array_equal(
          scales.choose_region(stack, positive, **options),
          scales.choose_region(stack, positive, connected=True, **options),
          err_msg=f"{seed} {positive} {negative} {grow}")


def test_the_distance_to_the_mask_edge_is_exact_within_its_reach():
  rng = np.random.default_rng(0)
  for shape in ((30, 40), (12, 15, 18)):
    for _ in range(20):
      side = rng.random(shape) > rng.choice([0.02, 0.2])
      click = tuple(int(rng.integers(0, n)) for n in shape)
      true = ndimage.distance_transform_edt(side)[click]
      for reach in (0, 1, 3, 8):
        found = scales_choosing._distance_to_outside(side, click, reach)
        if true <= reach:
          assert found == pytest.approx(true), (shape, click, reach)
        else:
          assert found > reach, (shape, click, reach)
  # A click in a corner, the only outside voxel far away: the box around the click holds no
  # outside voxel, and its faces inside the volume stand for the far edge.
  side = np.ones((30, 40), bool)
  side[29, 39] = False
  assert scales_choosing._distance_to_outside(side, (0, 0), 3) > 3


def test_sparse_or_negative_labels_select_as_their_dense_numbers():
  dense = _blocky_3d_stack(7)
  sparse = _blocky_3d_stack(7, scale=1000, shift=-5)
  for click in ((0, 0, 0), (3, 4, 5), (7, 9, 8)):
    for rule in scales.RULES:
      np.testing.assert_array_equal(cuts_jax.select(sparse, click, rule=rule),
                                    cuts_jax.select(dense, click, rule=rule))


def test_a_clicked_small_piece_is_found_in_its_box():
  # Level 1's piece of 3 voxels (below the fold threshold 4) is answered with itself.
  labels = np.zeros((2, 6, 6, 6), np.int32)
  pieces = np.zeros((2, 6, 6, 6), np.int32)
  pieces[1, 4, 4, 3:6] = 1
  stack = scales.ScaleStack(labels=labels, num_clusters=(1, 2), pieces=pieces, folded_below=4,
                            max_fraction=0.05)
  maps, label, size, box = stack.index.region(1, (4, 4, 4))
  assert size == 3 and box == (slice(4, 5), slice(4, 5), slice(3, 6))
  np.testing.assert_array_equal(cuts_jax.select(stack, (4, 4, 4)), pieces[1] == 1)


@pytest.mark.parametrize("connected", [True, False])  # Regions drawn in full / from the index.
def test_a_clicked_speck_beside_a_structure_gives_the_structure(connected):
  # Levels 1 and 2: a structure of 64 voxels (below the fold threshold 100, so kept when
  # clicked) and on its rim a 2-voxel speck, folded into it in `labels`; level 0: one segment.
  labels = np.zeros((3, 8, 8, 8), np.int32)
  pieces = np.zeros((3, 8, 8, 8), np.int32)
  labels[1:, 2:6, 2:6, 2:6] = pieces[1:, 2:6, 2:6, 2:6] = 1
  pieces[1:, 3:5, 3, 2] = 2
  stack = scales.ScaleStack(labels=labels, num_clusters=(1, 2, 3), pieces=pieces,
                            folded_below=100, min_kept=27, max_fraction=0.2)
  structure = labels[1] == 1
  np.testing.assert_array_equal(cuts_jax.select(stack, (3, 3, 2), connected=connected),
                                structure)
  np.testing.assert_array_equal(cuts_jax.select(stack, (4, 4, 4), connected=connected),
                                pieces[1] == 1)  # Above the floor: the piece itself.
  every = dataclasses.replace(stack, min_kept=1)
  np.testing.assert_array_equal(cuts_jax.select(every, (3, 3, 2), connected=connected),
                                pieces[1] == 2)


def test_one_level_of_a_stack_takes_later_clicks_as_a_flat_map_does():
  # Level 3 (k=4): the right top's two columns (8 px each) and the left half (32 px). A second
  # click on the left half adds it whole, as on the label map, where the bounded rule of a stack
  # would add no more than a quarter of the mask's size.
  stack = _stack()
  clicks, negative = [(1, 5), (6, 1)], [(6, 6)]
  flat = cuts_jax.select(stack.labels[3], clicks, negative=negative)
  np.testing.assert_array_equal(cuts_jax.select(stack, clicks, negative=negative, level=3), flat)
  assert flat[:, :4].all() and flat.sum() == 8 + 32
  bounded = cuts_jax.select(stack, clicks, negative=negative, level=3, negatives="bounded")
  assert bounded.sum() < flat.sum()


def test_snapping_can_put_back_a_structure_smaller_than_its_superpixel():
  labels = np.zeros((8, 8), np.int32)
  labels[3:5, 3:5] = 1  # 4 px inside one 64-px superpixel.
  superpixels = np.zeros((8, 8), np.int32)
  assert not scales.snap_to_superpixels(labels, superpixels).any()
  np.testing.assert_array_equal(
      scales.snap_to_superpixels(labels, superpixels, restore_lost=True), labels)
