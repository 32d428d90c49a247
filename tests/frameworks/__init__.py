"""Framework and provider tests in real Jupyter kernels against the demo server."""
