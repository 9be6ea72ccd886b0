"""Run plumbing: checkpoints and config.json (`checkpointing`), metrics files
(`metric_writers`), when periodic actions are due (`periodic`), console output (`console`).
"""
