"""What differs between stage kinds: one :class:`~intertask.training.objectives.base.Objective` per kind, driven by
the one training loop of :mod:`intertask.training.recipe`; :mod:`intertask.training.kinds` picks it."""
