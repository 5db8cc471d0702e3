"""Shared test configuration: pytester for the black-box plugin tests."""

# In-process pytester runs restore sys.modules afterwards; numpy's and scipy's
# extension modules cannot be imported twice in one process, so load them
# here, before any inner run, to keep them in the snapshot.
import numpy.fft  # noqa: F401
import scipy.stats  # noqa: F401

pytest_plugins = ["pytester"]
