"""The fault-injection suite reuses the datapool tests' rows (scikit-learn digits as samples)."""

from datapool.conftest import digits  # noqa: F401 - the session fixture

