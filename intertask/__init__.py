"""intertask: intermediate-task training for zero-shot cross-lingual transfer."""

from intertask.threads import prepare_environment as _prepare_environment

__version__ = "0.1.0"

_prepare_environment()  # OpenMP wait policy: must be in the environment before torch loads its OpenMP runtime
