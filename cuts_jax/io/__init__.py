"""Input and output: data sets and image files (`datasets`), NIfTI and DICOM (`medical`).

Host-side numpy; nothing here imports the model, training or evaluation.
"""
