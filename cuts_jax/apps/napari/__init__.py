"""The napari plugin: a dock widget to train, segment and click, a NIfTI/DICOM reader, samples.

`napari.yaml` beside this file is the plugin's manifest (found through the
`napari.manifest` entry point); install it with `pip install "cuts_jax[napari]"`
and open Plugins > cuts_jax in napari. Nothing here imports napari or Qt, so
that the package imports without them; the modules do, when napari loads them.
"""
