"""Scoring segmentations: `metrics`, the classical `baselines`, the `supervised_unet` of the
paper's Fig. 4, the evaluation run (`evaluate`), the segment report used during training
(`report`) and pictures (`viz`).
"""
