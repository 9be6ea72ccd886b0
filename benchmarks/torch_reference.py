"""The CUTS train step in PyTorch, to compare speeds on the same machine.

The same step as `cuts_jax.step.train_step` with the default config: the
paper's encoder (15/11/7 convolutions, 32/64/128 filters, batch norm, ReLU,
reflect padding, a per-pixel dense layer to 128 dims), a linear patch head,
pair selection with SSIM of 7x7 patches (Gaussian window, sigma 1.5),
InfoNCE (tau 0.1) + 10 x reconstruction, and AdamW. Pair selection is
vectorised with tensor operations (as in cuts_jax), not a Python loop per
pixel as in the authors' code, so that the comparison is of the frameworks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Encoder(torch.nn.Module):

  def __init__(self, channels: int, kernel_sizes=(15, 11, 7), features=(32, 64, 128),
               embedding_dim: int = 128, padding_mode: str = "reflect"):
    super().__init__()
    layers, previous = [], channels
    for kernel, width in zip(kernel_sizes, features):
      layers += [torch.nn.Conv2d(previous, width, kernel, padding=kernel // 2, bias=False,
                                 padding_mode=padding_mode),
                 torch.nn.BatchNorm2d(width, momentum=0.1, eps=1e-5), torch.nn.ReLU()]
      previous = width
    layers.append(torch.nn.Conv2d(previous, embedding_dim, 1))
    self.layers = torch.nn.Sequential(*layers)

  def forward(self, images):
    return self.layers(images)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
  coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
  g = torch.exp(-coords**2 / (2 * sigma**2))
  g = g / g.sum()
  return g[:, None] * g[None, :]


def _patches(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
             size: int) -> torch.Tensor:
  """images (B, C, H, W); rows/cols (B, N) centres -> (B, N, C, size, size)."""
  half = size // 2
  offsets = torch.arange(-half, half + 1, device=images.device)
  r = rows[..., None, None] + offsets[:, None]
  c = cols[..., None, None] + offsets[None, :]
  batch = torch.arange(images.shape[0], device=images.device)[:, None, None, None]
  gathered = images.permute(0, 2, 3, 1)[batch, r, c]  # (B, N, P, P, C)
  return gathered.permute(0, 1, 4, 2, 3)


def _ssim(a: torch.Tensor, b: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
  """SSIM of same-shaped (..., C, P, P) patches with a window of side P (one value each)."""
  c1, c2 = 0.01**2, 0.03**2
  w = window
  mu_a, mu_b = (a * w).sum((-2, -1)), (b * w).sum((-2, -1))
  var_a = (a * a * w).sum((-2, -1)) - mu_a**2
  var_b = (b * b * w).sum((-2, -1)) - mu_b**2
  cov = (a * b * w).sum((-2, -1)) - mu_a * mu_b
  ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) *
                                                       (var_a + var_b + c2))
  return ssim.mean(-1)


class CUTSStep:
  """Holds the model and optimizer; `step(images)` runs one update."""

  def __init__(self, channels: int = 3, *, patch_size: int = 7, num_anchors: int = 64,
               num_candidates: int = 8, positive_radius: int = 5,
               negative_min_distance: float = 10.0, ssim_threshold: float = 0.5,
               temperature: float = 0.1, lambda_reconstruction: float = 10.0,
               learning_rate: float = 1e-3, seed: int = 0, device: str = "cpu"):
    torch.manual_seed(seed)
    self.device = device
    self.encoder = Encoder(channels).to(device)
    self.head = torch.nn.Linear(128, patch_size * patch_size * channels).to(device)
    self.optimizer = torch.optim.AdamW(list(self.encoder.parameters()) +
                                       list(self.head.parameters()), lr=learning_rate,
                                       weight_decay=1e-4)
    self.patch_size, self.num_anchors, self.num_candidates = patch_size, num_anchors, \
        num_candidates
    self.radius, self.min_distance = positive_radius, negative_min_distance
    self.threshold, self.temperature = ssim_threshold, temperature
    self.lambda_reconstruction = lambda_reconstruction
    self.window = _gaussian_window(patch_size, 1.5).to(device)
    span = torch.arange(-positive_radius, positive_radius + 1)
    dr, dc = torch.meshgrid(span, span, indexing="ij")
    keep = (dr**2 + dc**2 > 0) & (dr**2 + dc**2 <= positive_radius**2)
    self.offsets = torch.stack([dr[keep], dc[keep]], -1).to(device)

  def _select(self, images):
    batch, _, height, width = images.shape
    half, s, k = self.patch_size // 2, self.num_anchors, self.num_candidates
    rand = lambda n, hi: torch.randint(half, hi - half, (batch, n), device=self.device)
    anchor_r, anchor_c = rand(s, height), rand(s, width)
    choice = torch.randint(0, len(self.offsets), (batch, s, k), device=self.device)
    pos_r = anchor_r[..., None] + self.offsets[choice, 0]
    pos_c = anchor_c[..., None] + self.offsets[choice, 1]
    inside = (pos_r >= half) & (pos_r < height - half) & (pos_c >= half) & (pos_c < width - half)
    pos_r, pos_c = pos_r.clamp(half, height - half - 1), pos_c.clamp(half, width - half - 1)
    neg_r, neg_c = rand(s * k, height).view(batch, s, k), rand(s * k, width).view(batch, s, k)
    far = (neg_r - anchor_r[..., None])**2 + (neg_c - anchor_c[..., None])**2 > \
        self.min_distance**2
    anchor_patches = _patches(images, anchor_r, anchor_c, self.patch_size)
    flat = lambda r, c: _patches(images, r.reshape(batch, -1), c.reshape(batch, -1),
                                 self.patch_size).view(batch, s, k, -1, self.patch_size,
                                                       self.patch_size)
    pos_ssim = _ssim(anchor_patches[:, :, None], flat(pos_r, pos_c), self.window)
    neg_ssim = _ssim(anchor_patches[:, :, None], flat(neg_r, neg_c), self.window)
    pos_ok = inside & (pos_ssim >= self.threshold)
    neg_ok = far & (neg_ssim < self.threshold)
    kept = torch.minimum(pos_ok.sum(-1), neg_ok.sum(-1))
    pos_mask = pos_ok & (pos_ok.cumsum(-1) <= kept[..., None])
    neg_mask = neg_ok & (neg_ok.cumsum(-1) <= kept[..., None])
    return (anchor_r, anchor_c, pos_r, pos_c, neg_r, neg_c, pos_mask, neg_mask,
            anchor_patches)

  def step(self, images: torch.Tensor) -> float:
    """images: (B, C, H, W) float in [0, 1]. Returns the loss."""
    with torch.no_grad():
      (ar, ac, pr, pc, nr, nc, pos_mask, neg_mask, anchor_patches) = self._select(images)
    embeddings = self.encoder(images).permute(0, 2, 3, 1)  # (B, H, W, D)
    batch = torch.arange(images.shape[0], device=self.device)
    anchors = embeddings[batch[:, None], ar, ac]
    positives = embeddings[batch[:, None, None], pr, pc]
    negatives = embeddings[batch[:, None, None], nr, nc]
    cos = lambda a, b: F.cosine_similarity(a, b, dim=-1, eps=1e-8)
    pos_logits = cos(anchors[:, :, None], positives) / self.temperature
    neg_logits = cos(anchors[:, :, None], negatives) / self.temperature
    neg_logits = neg_logits.masked_fill(~neg_mask, -1e9)
    lse = torch.logsumexp(neg_logits, -1, keepdim=True)
    per_positive = F.softplus(lse - pos_logits)
    contrastive = (per_positive * pos_mask).sum() / pos_mask.sum().clamp(min=1)
    rebuilt = self.head(anchors).view_as(anchor_patches)
    reconstruction = ((rebuilt - anchor_patches)**2).mean()
    loss = contrastive + self.lambda_reconstruction * reconstruction
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    return float(loss.detach())


__all__ = ["CUTSStep", "Encoder"]
