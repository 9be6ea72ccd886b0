"""The default config shared by every CUTS config: the paper's model, losses and sampling.

Not meant to be run by itself (it has no data set); the configs in `configs/`
start from `get_config()` and adjust it:

    from cuts_jax import defaults

    def get_config(model_preset="paper"):  # ml_collections passes "...py:PRESET" here.
      config = defaults.get_config(model_preset=model_preset)
      config.data.kind = "retina"
      return config

A model preset can be chosen after a colon on any config, e.g.
`--config=configs/retina.py:authors_code` for the authors' published code
instead of the paper: their four-layer 5x5 encoder, 5x5 patches, NT-Xent with
the image's other anchors' positives as negatives, and 0.001 x contrastive +
0.999 x reconstruction (`AUTHORS_CODE_TRAINING`).

Paper-literal and default settings: the paper preset's architecture, tau = 0.1,
lambda_c = 1 and lambda_r = 10 are the paper's; the reconstruction term is a
mean over the patch's values by default, where the paper writes the squared
norm (a sum): `--config.loss.reconstruction_reduction=sum` is the paper as
written (it scored lower on the tuning part: experiments/results/tuning_network.md).
Augmentations (`config.augment`) are off by default. A saved
`config.json` is read back laid over `get_config()`, so fields added since a
run was trained take their defaults.
"""

import ml_collections

__all__ = ["AUTHORS_CODE_PRESET", "AUTHORS_CODE_TRAINING", "MODEL_PRESETS", "PAPER_PRESET",
           "get_config"]

# The architecture of the paper (section III.B.1). The paper does not say how
# borders are padded; reflection keeps border pixels' embeddings like their
# neighbours' (zero padding gives the image's rim segments of its own).
PAPER_PRESET = dict(
    kernel_sizes=(15, 11, 7),
    features=(32, 64, 128),
    embedding_dim=128,
    activation="relu",
    padding="reflect",
)

# The variant the authors published as code: four 5x5 convolutions, replicate
# padding, LeakyReLU(0.01), and the last convolution's output as the embedding.
AUTHORS_CODE_PRESET = dict(
    kernel_sizes=(5, 5, 5, 5),
    features=(16, 32, 64, 128),
    embedding_dim=0,
    activation="leaky_relu",
    padding="edge",
)

MODEL_PRESETS = {"paper": PAPER_PRESET, "authors_code": AUTHORS_CODE_PRESET}

# What else the authors' code does (github.com/ChenLiu-1996/CUTS, src/model and src/utils):
# 5x5 patches rebuilt by one linear layer, NT-Xent (tau 0.5) between each anchor and a nearby
# pixel with the image's other anchors' positives as negatives, and the weighting
# 0.001 x contrastive + (1 - 0.001) x mean squared error.
AUTHORS_CODE_TRAINING = {
    ("sampling", "patch_size"): 5,
    ("sampling", "ssim_filter_size"): 5,
    ("loss", "contrastive"): "nt_xent",
    ("loss", "temperature"): 0.5,
    ("loss", "lambda_contrastive"): 0.001,
    ("loss", "lambda_reconstruction"): 0.999,
}


def get_config(*, model_preset: str = "paper") -> ml_collections.ConfigDict:
  """The defaults, with `config.model` from one of `MODEL_PRESETS`."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds initialisation, batch order and pair sampling.

  config.data = ml_collections.ConfigDict()
  config.data.kind = "folder"  # demo | retina | bsds500 | volume | folder | arrays (in memory)
  config.data.root = ""  # Folder (or .npz for kind=volume); set per data set.
  config.data.image_size = (128, 128)  # The paper trains and segments at 128x128.
  config.data.limit = 0  # Use only the first N images (0: all); for quick runs.
  config.data.include = ()  # kind=retina/folder: only images of these names (() keeps all).
  config.data.splits = ("train", "val")  # BSDS500 splits to load.
  config.data.axis = 0  # kind=volume: the axis slices are cut along.
  config.data.label_ids = ()  # kind=volume: label ids that form the target region.
  # kind=volume with label_ids: keep only slices with at least this many target pixels
  # (0: every slice). Only for evaluation: training must not choose slices by labels.
  config.data.min_target_pixels = 0
  # kind=volume: only slices first <= i < stop, as (first, stop) (() keeps all); e.g. one
  # hemisphere's slices as a tuning part (experiments/splits.json).
  config.data.slice_range = ()

  if model_preset not in MODEL_PRESETS:
    raise ValueError(f"unknown model preset {model_preset!r}; expected one of "
                     f"{sorted(MODEL_PRESETS)}")
  config.model = ml_collections.ConfigDict(dict(MODEL_PRESETS[model_preset]))
  config.model.preset = model_preset  # Recorded for the reader; the fields below rule.
  # How convolution weight gradients are computed: auto = the backend's fastest
  # (cuts_jax.conv.plan: FFT tiles or im2col products on CPU, XLA's own on GPU/TPU); xla;
  # im2col; fft. Same result either way (to float rounding).
  config.model.weight_gradient = "auto"
  # Mixed precision: "bfloat16" runs convolutions and dense layers in bf16 (parameters,
  # batch-norm statistics and the loss stay float32). Helps on GPUs and TPUs, not CPUs.
  config.model.compute_dtype = "float32"

  config.sampling = ml_collections.ConfigDict()
  config.sampling.patch_size = 7  # Side of compared and reconstructed patches (odd).
  config.sampling.num_anchors = 64  # Anchor pixels per image per step.
  config.sampling.num_positive_candidates = 8  # Examined within positive_radius per anchor.
  config.sampling.num_negative_candidates = 8  # Examined beyond negative_min_distance.
  config.sampling.positive_radius = 5  # Paper: positives are centred within 5 px.
  config.sampling.negative_min_distance = 10.0  # Negatives are centred farther than this.
  config.sampling.ssim_threshold = 0.5  # Positives: SSIM >= it; negatives: SSIM < it.
  config.sampling.ssim_filter_size = 7  # Gaussian SSIM window; must fit in the patch.
  config.sampling.ssim_filter_sigma = 1.5  # The standard SSIM window width.
  # SSIM's data range L: "fixed" (1, images in [0, 1]) or "patch" (the two patches' own range,
  # as the authors' code; noise in a flat region then weighs as much as in a textured one).
  config.sampling.ssim_data_range = "fixed"

  config.loss = ml_collections.ConfigDict()
  config.loss.temperature = 0.1  # Paper: tau = 0.1.
  config.loss.lambda_contrastive = 1.0  # Paper: 1.
  config.loss.lambda_reconstruction = 10.0  # Paper: 10.
  # "mean" of a patch's squared errors (default, chosen on the tuning part) or "sum": the
  # paper's squared norm ||x - f_r(e)||^2, 147x heavier for 7x7x3 patches.
  config.loss.reconstruction_reduction = "mean"
  # "info_nce": the paper's, over SSIM-verified pairs; "nt_xent": the authors' code's.
  config.loss.contrastive = "info_nce"
  # Side in px of a wider window around each anchor whose cell means the head also rebuilds,
  # beside the patch (losses.LossSettings; 0: off, the paper's patch only). Off: 28 px with
  # 7 x 7 cells scored -0.018 [-0.044, +0.006] on the tuning part (tuning_network.md).
  config.loss.reconstruction_context = 0
  config.loss.reconstruction_context_cells = 7  # Cells per side of that window's grid.

  # Extra positives (cuts_jax.augment): each anchor's pixel in an augmented view of its image.
  config.augment = ml_collections.ConfigDict()
  config.augment.enabled = False  # Off: not better on the tuning part (tuning_network.md).
  config.augment.num_views = 1  # Views per image per step (each costs one more encoder pass).
  config.augment.brightness = 0.1  # Added brightness, uniform in +-this.
  config.augment.contrast = 0.2  # Contrast factor, uniform in 1 +- this.
  config.augment.gamma = 0.2  # Gamma exp(u), u uniform in +- this.
  config.augment.colour_shift = 0.05  # Per-channel shift, uniform in +- this.
  config.augment.flips = True  # Random left-right flips.
  config.augment.rotations = True  # Random 90-degree turns (square images; else 180 only).
  config.augment.max_scale = 0.1  # Zoom about the centre by a factor in [1/(1+m), 1+m].

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3  # AdamW peak rate (the authors' code uses 1e-3).
  config.optim.weight_decay = 1e-4  # As in the authors' code.
  config.optim.warmup_steps = 50  # Linear warm-up before the cosine decay.
  config.optim.final_learning_rate_fraction = 0.01  # Cosine decays to this x peak.

  config.training = ml_collections.ConfigDict()
  config.training.batch_size = 8  # Global batch, split over all devices and hosts.
  config.training.num_steps = 1000  # Optimizer updates.
  config.training.crop_size = 0  # Train on random crops of this side (0: whole images).
  # Keep the data set on every device when it fits (a quarter of free memory; 1 GiB on
  # CPU), so batches are gathered there; otherwise batches are prefetched from the host.
  config.training.data_on_device = True
  config.training.log_every = 25  # Steps between metrics lines (and finite-loss checks).
  config.training.checkpoint_every = 250  # Steps between checkpoints.
  config.training.keep_checkpoints = 3  # Most recent checkpoints kept on disk.
  config.training.eval_every = 0  # Steps between segment reports (0: only at the end).
  config.training.num_figure_images = 4  # Images drawn in workdir/segments.png by a report.

  config.evaluation = ml_collections.ConfigDict()
  config.evaluation.num_clusters = 10  # Paper: spectral k-means with k = 10.
  config.evaluation.clustering = "spectral"  # spectral | kmeans (of the embeddings).
  # Distances between pixels for clustering: "reconstruction" measures embeddings by
  # the patches the reconstruction head rebuilds from them; "embedding" uses the raw
  # embeddings (the paper's literal choice). See experiments/results for both.
  config.evaluation.cluster_space = "reconstruction"
  # What `segment` clusters beside the embeddings, and how clusters become regions;
  # chosen on the tuning part of the retina and BSDS500 data (experiments/splits.json,
  # experiments/results/tuning_retina.md and tuning_berkeley.md). A trained model carries
  # these as its defaults (its SegmentSettings; see cuts_jax.segment_settings).
  config.evaluation.image_weight = 1.0  # Smoothed image values beside the embeddings (0: none).
  config.evaluation.image_sigma = 2.0  # Their Gaussian smoothing, in pixels.
  config.evaluation.connected_segments = True  # Cut clusters into connected regions.
  config.evaluation.min_segment_fraction = 0.005  # Smaller pieces join a neighbour.
  # The same threshold in pixels at the segmenting size, used instead when > 0: about the
  # encoder's receptive field (31 px for 15/11/7 kernels), not a share of the image, so small
  # structures the encoder resolves survive (experiments/results/tuning_scale.md).
  config.evaluation.min_segment_pixels = 30
  # The scales `select` chooses among under a click (cuts_jax.scales): segment_hierarchy
  # clusters one image's features at each of these k; scale_rule picks the clicked region
  # without labels ("stability", "consensus", "medoid", or "fixed" at num_clusters), passing
  # over levels whose clicked segment covers more than scale_max_fraction of the image.
  # Chosen on the tune parts (experiments/results/tuning_scale.md): stability at 25% had the
  # best one-click Dice on both (retina 0.887, brain 0.551; fixed k = 10: 0.806, 0.450).
  config.evaluation.scale_num_clusters = tuple(range(2, 16))
  config.evaluation.scale_rule = "stability"
  config.evaluation.scale_max_fraction = 0.25
  # Segments (segment's, and each level of segment_hierarchy) redrawn along the image's
  # superpixels (Felzenszwalb at this scale; 0: off), chosen on the tune parts
  # (experiments/results/tuning_scale.md): the flat k = 10 map's one-pixel Dice rose from
  # 0.819 to 0.855 on retina (paired +0.036 [+0.014, +0.063]) and from 0.453 to 0.557 on the
  # brain (+0.103 [+0.055, +0.148]); under the scale rule from 0.854 to 0.865 and 0.516 to 0.571.
  config.evaluation.snap_scale = 32.0
  # The same two choices for a volume (cuts_jax.volume), chosen on the brain's tune hemisphere
  # (experiments/results/tuning_volume.md): a quarter of a volume holds many structures, so
  # the cap is a share of the volume's voxels of its own; pieces of a 3-D segmentation fold
  # below this many voxels of the segmenting grid (0: the 2-D threshold above).
  config.evaluation.volume_max_fraction = 0.05
  config.evaluation.volume_min_segment_voxels = 1000
  # A clicked piece below that threshold is kept out of the fold (answered with itself) only
  # from this many grid voxels up; a smaller one (a speck) folds like any piece and the click
  # takes the segment it joins (a rim click on the report hemisphere had landed on a kept
  # 3-voxel piece of one model; 1: every clicked piece is kept). 27 (3 voxels across) leaves
  # no speck among the brain tune hemisphere's 51 clicks (experiments/results/tuning_volume.md).
  # The sweep's rule had picked 1000, the fold threshold itself (rim clicks 0.177 against
  # 0.157 for 27); it was set back to 27 because 1000 makes every structure under 1000 grid
  # voxels (about 17 mm across on the brain's grid) unselectable, e.g. a small lesion.
  config.evaluation.volume_min_kept_voxels = 27
  config.evaluation.segment_at_training_size = True  # Segment at data.image_size.
  # CUTS rows of an evaluation (cuts_jax.evaluation.evaluate): the default `segment`, the
  # plain clusters in each space (the paper's literal row is cuts_raw_embedding), and the
  # scale rule's region under the click (cuts_scale).
  # Controls (issue 21): cuts_untrained (random weights) and patch_segments (raw patches' PCA)
  # through the same pipeline with the model's k and folding.
  config.evaluation.cuts_rows = ("cuts", "cuts_reconstruction_clusters", "cuts_raw_embedding",
                                 "cuts_cosine", "cuts_scale", "cuts_untrained", "patch_segments")
  # More click rows (evaluate.CLICK_ROWS: the colour and Felzenszwalb stacks with the same
  # rule, and oracles that pick per image, with the expert mask, the best level; the plain
  # colour oracle tries these cluster counts).
  config.evaluation.oracle_num_clusters = tuple(range(2, 16))
  config.evaluation.oracle_smoothing_sigma = 2.0  # The colour oracle's smoothing.
  config.evaluation.seed = 0  # Seeds clustering and the patch sample of the metrics.
  config.evaluation.click_percentile = 50.0  # Paper: the expert region's median pixel.
  config.evaluation.patch_pixels = 200  # M pixels sampled per image for SSIM/ERGAS/RMSE.
  config.evaluation.patch_size = 7  # P, side of the patches compared by those measures.
  # ERGAS divides by each patch channel's mean; means below this count as this, so
  # black backgrounds (fundus rims, MRI) do not make single pairs dominate the average.
  config.evaluation.ergas_floor = 0.01
  config.evaluation.num_figure_images = 4  # Images drawn in the overlay figures.
  # Baselines, scored with exactly the protocol and metrics used for CUTS; a
  # "baseline" entry names the function when the method's name is not one.
  config.evaluation.baselines = ml_collections.ConfigDict({
      "random": {"num_segments": 10},
      "otsu": {},
      "otsu_watershed": {"min_distance": 5},
      "felzenszwalb": {"scale": 1500.0, "sigma": 0.8, "min_size": 20},
      "slic": {"num_segments": 10},
      "kmeans_pixels": {"num_clusters": 10},
      "kmeans_smoothed": {"baseline": "kmeans_pixels", "num_clusters": 10,
                          "smoothing_sigma": 2.0},
      # Colour alone through CUTS's own segment pipeline (spectral k-means, then
      # connected segments): what the learned embedding adds, with the same rule.
      # match_cuts: k, method, smoothing, connected and folding are the evaluation's own.
      "colour_segments": {"baseline": "kmeans_pixels", "match_cuts": True},
  })

  if model_preset == "authors_code":
    for (section, field), value in AUTHORS_CODE_TRAINING.items():
      config[section][field] = value

  config.distributed = ml_collections.ConfigDict()
  config.distributed.initialize = False  # Call jax.distributed.initialize() (multi-host).
  config.distributed.coordinator_address = ""  # Empty: let JAX detect the cluster.
  config.distributed.num_processes = 1  # With coordinator_address: number of hosts.
  config.distributed.process_id = 0  # With coordinator_address: this host's index.
  # A host silent this long is taken as dead and every other one stops with an error.
  config.distributed.heartbeat_timeout_s = 100
  return config
