"""Command-line programs: training (`train`, also `python -m cuts_jax.main`), `predict` and
`evaluate`; each is run with `python -m cuts_jax.apps.<name>`.
"""
