"""Package metadata lives in setup.cfg; this file lets older pip versions build it."""

import setuptools

setuptools.setup()
