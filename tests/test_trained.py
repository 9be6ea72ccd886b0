"""`load`: a trained workdir read back as the `SegmentationParams` that segmenting needs.

Damaged or mismatched workdirs: test_bad_input.py; read-only ones: test_reliability.py.
"""

import jax.numpy as jnp
import numpy as np
import pytest

import cuts_jax
from cuts_jax.io import datasets as data


def test_load_restores_the_trained_weights(trained_run):
  params, state = cuts_jax.load(trained_run.workdir), trained_run.state
  assert params.channels == 3 and params.image_size == (32, 32)
  np.testing.assert_array_equal(params.params["conv0"]["kernel"],
                                state.params["encoder"]["conv0"]["kernel"])
  np.testing.assert_array_equal(params.batch_stats["batch_norm1"]["var"],
                                state.batch_stats["encoder"]["batch_norm1"]["var"])
  from_state = cuts_jax.SegmentationParams.from_train_state(state, trained_run.config)
  images = jnp.asarray(data.load_demo((32, 32)).images[:2])
  np.testing.assert_allclose(cuts_jax.embed(params, images), cuts_jax.embed(from_state, images),
                             rtol=1e-6)


def test_load_of_an_empty_or_foreign_directory_says_why(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    cuts_jax.load(tmp_path)
