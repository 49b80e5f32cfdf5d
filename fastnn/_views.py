"""Typed memoryviews of the arrays fastnn owns, acquired once and passed to the kernels.

fastnn_c's kernels take typed memoryviews (fastnn_c/_kernel.pyx). Converting a NumPy array
costs about 0.4 µs a call, passing a memoryview acquired before about 0.08 µs; a training
step passes some thirty arrays. So the arrays fastnn owns and reuses (parameters,
gradients, optimizer state, the layers' buffers) are bound once, and a step's kernel calls
look their views up; an array nobody bound (a batch the user passes) goes to the kernel as
it is and is converted there.
"""
import types

import numpy as np

from fastnn_c._kernel import as_view


class BoundViews:
    """Memoryviews of bound arrays, by array identity.

    An entry keeps its array alive, so no other array can take its ``id`` while it is
    bound; ``unbind`` (or dropping this object) releases it.
    """

    __slots__ = ("_views", "_flat")

    def __init__(self):
        self._views = {}
        self._flat = {}

    def bind(self, array):
        """Acquire and keep ``array``'s memoryview (one or two dimensions) and its flat (1-D)
        one; returns ``array``."""
        if array.ndim in (1, 2):
            self._views[id(array)] = (array, as_view(array))
        self._flat[id(array)] = (array, as_view(array, flat=True))
        return array

    def own(self, array):
        """``array``'s memoryview, bound now if it was not: for arrays the caller keeps (its
        parameters and their gradients), never for arrays that come and go."""
        return self._own(self._views, array)

    def own_flat(self, array):
        """``own`` for the flat (1-D) memoryview."""
        return self._own(self._flat, array)

    def _own(self, table, array):
        entry = table.get(id(array))
        if entry is None or entry[0] is not array:
            self.bind(array)
            entry = table[id(array)]
        return entry[1]

    def unbind(self, array):
        """Forget ``array`` (no error if it was not bound)."""
        for table in (self._views, self._flat):
            entry = table.get(id(array))
            if entry is not None and entry[0] is array:
                del table[id(array)]

    def update(self, other):
        """Take over every binding of ``other``."""
        self._views.update(other._views)
        self._flat.update(other._flat)

    def __reduce__(self):
        # Memoryviews are neither copied nor pickled: a copy binds its own arrays again.
        return (BoundViews, ())

    def __call__(self, array):
        """``array``'s memoryview if it is bound, else ``array`` (None stays None)."""
        entry = self._views.get(id(array))
        return entry[1] if entry is not None and entry[0] is array else array

    def flat(self, array):
        """``array``'s flat memoryview if it is bound, else ``array`` as one run of values."""
        entry = self._flat.get(id(array))
        return entry[1] if entry is not None and entry[0] is array else array.reshape(-1)


def specialized(*kernels):
    """{dtype: namespace of each kernel's float32 or float64 specialization, by kernel name}:
    looked up once per call instead of ``kernel.typed(dtype)``."""
    return {np.dtype(dtype): types.SimpleNamespace(**{k.name: k.typed(dtype) for k in kernels})
            for dtype in (np.float32, np.float64)}
