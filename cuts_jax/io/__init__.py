"""Input and output: data sets (`datasets`), image files (`image_files`), NIfTI/DICOM (`medical`).

Host-side numpy; nothing here imports the model, training or evaluation.
"""
