"""Independent random streams drawn from one integer seed.

A run seeded with an int ``seed`` (``fit(rng=seed)``, ``fastnn train --seed``,
``MLPClassifier(random_state=seed)``) draws each of its random choices from its own stream,
``numpy.random.SeedSequence(seed, spawn_key=(KEY, ...))``, so one choice never shifts
another: the validation split does not depend on the number of epochs, and epoch k's
shuffling depends only on (seed, k). The keys are named here, in one place; changing one
changes every seeded run's results.
"""
import numpy as np

#: Which rows are held out for validation.
VALIDATION_SPLIT = 0
#: The order of the mini-batches; followed by the 1-based epoch number.
SHUFFLE = 1
#: The network's initial weights (and dropout seeds).
INITIAL_WEIGHTS = 2
#: Data augmentation (which images are flipped); followed by the 1-based epoch number.
AUGMENT = 3


def seed_from(rng):
    """An int seed from None (fresh entropy), an int >= 0, or a Generator or (scikit-learn's
    ``random_state``) a RandomState, either advanced by one draw."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**63))
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(np.iinfo(np.int32).max))
    if rng is None:
        return int(np.random.SeedSequence().entropy % 2**63)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return int(rng)
    raise TypeError(f"rng must be None, a non-negative int seed or a numpy.random.Generator, "
                    f"got {rng!r}")


def stream(seed, key, *subkeys):
    """The Generator of stream ``key`` (one of the constants above) of ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(key, *subkeys)))
