"""The test cluster's one error type (its own module: every other module imports it)."""


class ClusterError(RuntimeError):
    """A test-cluster operation failed; the message says what and where to look."""
