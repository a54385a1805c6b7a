import os

from hypothesis import HealthCheck, settings

# Numba compiles each kernel once per process (and caches it on disk); examples after the first
# are fast, so the deadline is off and the example counts are kept moderate for CI on 2 cores.
settings.register_profile(
    "default", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=600)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
