"""Losses computed from the network's raw outputs (logits), value and gradient in one pass.

Every loss reduces over the batch by the mean, as PyTorch and Keras do:

========================== ============================================================
``softmax_cross_entropy``  L = (1/n) Σ_i [log Σ_j e^{z_ij} − z_{i,y_i}], integer labels
``mse``                    L = (1/(n k)) Σ_ij (z_ij − t_ij)²
``hinge``                  L = (1/n) Σ_i Σ_{j≠y_i} max(0, Δ + z_ij − z_{i,y_i}), Δ = 1
                           (CS224n / Weston-Watkins; PyTorch's MultiMarginLoss also ÷ k)
``binary_cross_entropy``   L = (1/(n k)) Σ_ij [log(1 + e^{z_ij}) − t_ij z_ij], t ∈ [0, 1]
``poisson``                L = (1/(n k)) Σ_ij [e^{z_ij} − t_ij z_ij], t ≥ 0 (log link)
========================== ============================================================

With per-sample weights w_i (``sample_weight``), each becomes the weighted mean
(1/Σ_i w_i) Σ_i w_i ℓ_i of the row losses ℓ_i, scikit-learn's definition (>= 1.7).
``Weighted`` carries the weights with the targets, so they follow the rows through
``fastnn.fit``'s shuffling and batching.
"""
import numpy as np

from fastnn._validation import check_array, check_labels
from fastnn._views import BoundViews, specialized
from fastnn_c import losses as _losses

#: The loss kernels' float32 and float64 specializations, called with bound memoryviews.
_LOSSES = specialized(_losses.softmax_cross_entropy, _losses.mean_squared_error,
                      _losses.multiclass_hinge, _losses.binary_cross_entropy_logits,
                      _losses.poisson_log)


class Loss:
    """Base class: ``forward(output, target)`` returns the value and stores the gradient.

    Subclasses define ``check_target(target, output_shape, dtype)`` (validate the target and
    return it ready for the kernel) and ``kernel``, a ``fastnn_c.losses`` kernel (with
    ``_extra()``, its arguments after the gradient).
    """

    name = None
    #: "labels" (integer class per row) or "values" (array shaped like the output).
    target_kind = "values"

    #: The ``fastnn_c.losses`` kernel: ``(output, target, grad or None, *extra)`` to the value.
    kernel = None

    def __init__(self):
        self._grad = None
        self._views = BoundViews()

    def share_views(self, views):
        """Look memoryviews up in ``views`` (a network's ``ExecutionPlan.views``, where its
        last layer's output is bound) and bind the gradient there."""
        self._views = views

    def forward(self, output, target, validate=True, sample_weight=None):
        """Loss value (a Python float); the gradient is then available from ``backward()``.

        ``sample_weight`` (n,) non-negative, or None: the weighted mean of the row losses
        (module docstring). ``validate=False`` skips the checks, for callers that pass a
        C-contiguous float ``output``, a target already checked by ``check_target`` (as
        ``Sequential`` does) and weights already checked by ``check_sample_weight``.
        """
        if validate:
            output, target = self._check(output, target)
            sample_weight = _check_sample_weight(sample_weight, output.shape[0], output.dtype)
        if self._grad is None or self._grad.shape != output.shape or self._grad.dtype != output.dtype:
            self._grad = np.empty_like(output)
        return float(self._kernel(output, target, self._grad, sample_weight))

    def value(self, output, target, sample_weight=None):
        """Loss value without computing the gradient."""
        output, target = self._check(output, target)
        sample_weight = _check_sample_weight(sample_weight, output.shape[0], output.dtype)
        return float(self._kernel(output, target, None, sample_weight))

    def _kernel(self, output, target, grad, weight=None):
        """The kernel on a checked output and target: the value, and the gradient into
        ``grad`` unless it is None (the output and the gradient buffer through their bound
        memoryviews)."""
        typed = getattr(_LOSSES[output.dtype], self.kernel.name)
        return typed(self._views(output), target, None if grad is None else self._views.own(grad),
                     weight, *self._extra())

    def _extra(self):
        """The kernel's arguments after the gradient."""
        return ()

    def backward(self):
        """∂L/∂output for the last ``forward`` call (a buffer reused by the next call)."""
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._grad

    def get_config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"

    def _check(self, output, target):
        dtype = output.dtype if isinstance(output, np.ndarray) and output.dtype.kind == "f" else np.float64
        output = check_array(output, "output", dtype)
        return output, self.check_target(target, output.shape, output.dtype)


class _LabelLoss(Loss):
    target_kind = "labels"

    def check_target(self, target, output_shape, dtype):
        return check_labels(target, "y", output_shape[0], output_shape[1])


class _ValueLoss(Loss):
    target_kind = "values"

    def check_target(self, target, output_shape, dtype):
        target = np.asarray(target)
        if target.ndim == 1 and output_shape[1] == 1:
            target = target.reshape(-1, 1)
        target = check_array(target, "y", dtype, allow_empty=True)
        if target.shape != tuple(output_shape):
            raise ValueError(f"y has shape {target.shape}, expected {tuple(output_shape)} "
                             "(the shape of the network output)")
        return target


class SoftmaxCrossEntropy(_LabelLoss):
    """Softmax cross-entropy from logits with integer labels (log-sum-exp stable).

    L = (1/n) Σ_i [log Σ_j e^{z_ij} − z_{i,y_i}];  ∂L/∂z = (softmax(z) − onehot(y)) / n.
    """

    name = "softmax_cross_entropy"

    kernel = _losses.softmax_cross_entropy


class MeanSquaredError(_ValueLoss):
    """L = (1/(n k)) Σ_ij (z_ij − t_ij)², the mean over every element (PyTorch's MSELoss)."""

    name = "mse"

    kernel = _losses.mean_squared_error


class MultiClassHinge(_LabelLoss):
    """Multi-class max-margin loss (CS224n), L = (1/n) Σ_i Σ_{j≠y_i} max(0, Δ + z_ij − z_{i,y_i}).

    Parameters
    ----------
    margin : float, default 1.0
        Δ. PyTorch's MultiMarginLoss divides the inner sum by k as well; this does not.
    """

    name = "hinge"

    def __init__(self, margin=1.0):
        super().__init__()
        self.margin = float(margin)

    def get_config(self):
        return {"margin": self.margin}

    kernel = _losses.multiclass_hinge

    def _extra(self):
        return (self.margin,)


class BinaryCrossEntropy(_ValueLoss):
    """Binary cross-entropy from logits, per output unit (multi-label).

    L = (1/(n k)) Σ_ij [log(1 + e^{z_ij}) − t_ij z_ij];  ∂L/∂z = (σ(z) − t) / (n k).
    """

    name = "binary_cross_entropy"

    kernel = _losses.binary_cross_entropy_logits


class Poisson(_ValueLoss):
    """Poisson loss with the log link: the output z is log ŷ, and

    L = (1/(n k)) Σ_ij [e^{z_ij} − t_ij z_ij];  ∂L/∂z = (e^z − t) / (n k),

    half the Poisson deviance 2 Σ [t log(t/ŷ) − t + ŷ] less its terms free of z
    (scikit-learn's ``HalfPoissonLoss``, McCullagh & Nelder, "Generalized Linear Models",
    1989). The targets are counts or rates, t ≥ 0.
    """

    name = "poisson"

    kernel = _losses.poisson_log

    def check_target(self, target, output_shape, dtype):
        target = super().check_target(target, output_shape, dtype)
        if (target < 0).any():
            raise ValueError("y must be non-negative for the Poisson loss (counts or rates); "
                             f"its smallest value is {target.min()}")
        return target


class Weighted(Loss):
    """``base`` weighted per sample, its target a record array with fields "target" (what
    ``base`` takes) and "weight" (one non-negative weight per row), from ``records``.

    The weights travel in the target, so ``fastnn.fit`` shuffles and batches them with their
    rows. ``on_batch(weight_sum)``, if given, is called with each batch's Σ w before its
    step (scikit-learn divides its L2 term by that sum, ``fastnn.estimator``).
    """

    target_kind = "records"

    def __init__(self, base, on_batch=None):
        super().__init__()
        self.base, self.on_batch = get(base), on_batch
        self.name = self.base.name

    @staticmethod
    def records(target, sample_weight):
        """The record array of ``target`` (n rows) and ``sample_weight`` (n,)."""
        target = np.asarray(target)
        weight = np.asarray(sample_weight, dtype=np.float64)
        fields = [("target", target.dtype, target.shape[1:]), ("weight", np.float64)]
        out = np.empty(len(target), dtype=fields)
        out["target"], out["weight"] = target, weight
        return out

    def share_views(self, views):
        self.base.share_views(views)

    def check_target(self, target, output_shape, dtype):
        names = getattr(getattr(target, "dtype", None), "names", None)
        if names != ("target", "weight"):
            raise TypeError("a Weighted loss's target must be the record array of "
                            "Weighted.records(target, sample_weight)")
        return target

    def _split(self, output, target):
        values = self.base.check_target(np.ascontiguousarray(target["target"]), output.shape,
                                        output.dtype)
        weight = _check_sample_weight(target["weight"], output.shape[0], output.dtype)
        if self.on_batch is not None:
            self.on_batch(float(weight.sum(dtype=np.float64)))
        return values, weight

    def forward(self, output, target, validate=True, sample_weight=None):
        values, weight = self._split(output, target)
        return self.base.forward(output, values, validate=validate, sample_weight=weight)

    def value(self, output, target, sample_weight=None):
        values, weight = self._split(output, target)
        return self.base.value(output, values, sample_weight=weight)

    def backward(self):
        return self.base.backward()

    def get_config(self):
        return self.base.get_config()

    def __repr__(self):
        return f"Weighted({self.base!r})"


def _check_sample_weight(sample_weight, n, dtype):
    """``sample_weight`` as a C-contiguous (n,) array of ``dtype``, finite and non-negative,
    or None; ValueError naming it otherwise."""
    if sample_weight is None:
        return None
    weight = np.ascontiguousarray(sample_weight, dtype=dtype)
    if weight.shape != (n,):
        raise ValueError(f"sample_weight has shape {weight.shape}, expected ({n},): one weight "
                         "per sample")
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    return weight


LOSSES = {cls.name: cls for cls in (SoftmaxCrossEntropy, MeanSquaredError, MultiClassHinge,
                                     BinaryCrossEntropy, Poisson)}


def get(loss):
    """A ``Loss`` instance from a name in ``LOSSES`` or an instance."""
    if isinstance(loss, Loss):
        return loss
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose from {', '.join(LOSSES)}")
    return LOSSES[loss]()
