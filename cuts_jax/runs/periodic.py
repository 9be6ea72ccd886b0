"""The one place that decides at which steps to log, save or evaluate."""

from __future__ import annotations

__all__ = ["is_due"]


def is_due(step: int, every: int, *, last_step: int) -> bool:
  """True when an action that runs every `every` steps should run after `step`.

  Steps count completed updates (1, 2, ...). The action runs at multiples of
  `every` and always at `last_step`, so the end of a run is never skipped;
  `every <= 0` turns it off except at `last_step`.
  """
  if step == last_step:
    return True
  return every > 0 and step % every == 0
