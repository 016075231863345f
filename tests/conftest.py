"""Settings for every test directory."""

from __future__ import annotations

from hypothesis import settings

# Hypothesis fails an example that runs longer than its deadline (200 ms by default) with
# DeadlineExceeded: a timing assertion, which a busy 2-core machine broke (test_origin_properties
# took 446 ms once). Properties are checked without a time limit; pytest-timeout still bounds
# each test.
settings.register_profile("project", deadline=None)
settings.load_profile("project")
