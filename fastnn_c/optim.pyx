"""Optimizer update kernels: one fused, in-place pass over a parameter and its state.

Design: every update reads the raw gradient once and forms the effective gradient
element by element, g = clip(s·grad, −c, c) + λθ (`_effective_grad`), where s is the
global-norm clipping scale (1 = none), c the elementwise clip value (inf = none) and λ
the L2 weight decay (0 = none); then it updates the state arrays and θ in the same loop,
so no temporary array is ever allocated. Hyper-parameters arrive as doubles and are
rounded once to the parameter's dtype; step-dependent factors (Adam's bias corrections)
are computed by the caller in double. `sum_squares` (for global-norm clipping) is
`_math.pxd`'s `sum_squares_run`: double accumulators, no float32 overflow. State that decays
(velocity, moments, RMSProp's average) is flushed to 0 below the smallest normal number
instead of sinking into the slow subnormals (`flush_subnormal`). The loops are
single-threaded. Arrays of any shape (a parameter's own array) are read as one run of
values (``param:*`` specs: each kernel takes ``[::1]`` memoryviews and indexes them); a
call's arrays all have the parameter's shape.
NaN and inf propagate (the clip comparisons let NaN through).
"""
from cython cimport floating
from libc.math cimport INFINITY

from fastnn_c._arrays cimport check_vector
from fastnn_c._kernel import Kernel
from fastnn_c._math cimport flush_subnormal, fsqrt, sum_squares_run


cdef inline floating _effective_grad(floating g, floating theta, floating scale,
                                     floating clip, floating decay) noexcept nogil:
    """clip(scale·g, −clip, clip) + decay·θ."""
    g = scale * g
    if g > clip:
        g = clip
    elif g < -clip:
        g = -clip
    return g + decay * theta


def _sgd_update(floating[::1] param,       # OUT, updated in place
                const floating[::1] grad,  # IN like param
                double lr, double weight_decay=0.0, double grad_scale=1.0,
                double clip_value=INFINITY):
    """θ := θ − α g."""
    cdef Py_ssize_t i, n = param.shape[0]
    check_vector("sgd_update", "grad", grad.shape[0], n)
    cdef floating a = <floating>lr, s = <floating>grad_scale, c = <floating>clip_value
    cdef floating wd = <floating>weight_decay
    with nogil:
        for i in range(n):
            param[i] -= a * _effective_grad(grad[i], param[i], s, c, wd)


def _momentum_update(floating[::1] param,       # OUT, updated in place
                     const floating[::1] grad,  # IN like param
                     floating[::1] velocity,    # OUT like param, updated in place
                     double lr, double momentum, double weight_decay=0.0,
                     double grad_scale=1.0, double clip_value=INFINITY, bint nesterov=False):
    """v := μ v − α g;  θ := θ + v   (CS224n/CS231n).

    With ``nesterov``: v' := μ v − α g;  θ := θ − μ v + (1 + μ) v';  v := v'  (CS231n's form).
    """
    cdef str kernel = "momentum_update"
    cdef Py_ssize_t i, n = param.shape[0]
    check_vector(kernel, "grad", grad.shape[0], n)
    check_vector(kernel, "velocity", velocity.shape[0], n)
    cdef floating a = <floating>lr, mu = <floating>momentum, s = <floating>grad_scale
    cdef floating c = <floating>clip_value, wd = <floating>weight_decay, g, v_prev
    cdef floating mu1 = 1 + mu
    with nogil:
        if nesterov:
            for i in range(n):
                g = _effective_grad(grad[i], param[i], s, c, wd)
                v_prev = velocity[i]
                velocity[i] = flush_subnormal(mu * v_prev - a * g)
                param[i] += mu1 * velocity[i] - mu * v_prev
        else:
            for i in range(n):
                g = _effective_grad(grad[i], param[i], s, c, wd)
                velocity[i] = flush_subnormal(mu * velocity[i] - a * g)
                param[i] += velocity[i]


def _adagrad_update(floating[::1] param,       # OUT, updated in place
                    const floating[::1] grad,  # IN like param
                    floating[::1] sum_sq,      # OUT like param, updated in place
                    double lr, double eps, double weight_decay=0.0, double grad_scale=1.0,
                    double clip_value=INFINITY):
    """G := G + g²;  θ := θ − α g / (√G + ε)   (Duchi et al. 2011); G is ``sum_sq``."""
    cdef str kernel = "adagrad_update"
    cdef Py_ssize_t i, n = param.shape[0]
    check_vector(kernel, "grad", grad.shape[0], n)
    check_vector(kernel, "sum_sq", sum_sq.shape[0], n)
    cdef floating a = <floating>lr, e = <floating>eps, s = <floating>grad_scale
    cdef floating c = <floating>clip_value, wd = <floating>weight_decay, g
    with nogil:
        for i in range(n):
            g = _effective_grad(grad[i], param[i], s, c, wd)
            sum_sq[i] += g * g
            param[i] -= a * g / (fsqrt(sum_sq[i]) + e)


def _rmsprop_update(floating[::1] param,       # OUT, updated in place
                    const floating[::1] grad,  # IN like param
                    floating[::1] mean_sq,     # OUT like param, updated in place
                    double lr, double rho, double eps, double weight_decay=0.0,
                    double grad_scale=1.0, double clip_value=INFINITY):
    """r := ρ r + (1 − ρ) g²;  θ := θ − α g / (√r + ε)   (Tieleman & Hinton 2012); r is ``mean_sq``."""
    cdef str kernel = "rmsprop_update"
    cdef Py_ssize_t i, n = param.shape[0]
    check_vector(kernel, "grad", grad.shape[0], n)
    check_vector(kernel, "mean_sq", mean_sq.shape[0], n)
    cdef floating a = <floating>lr, r = <floating>rho, r1 = <floating>(1.0 - rho)
    cdef floating e = <floating>eps, s = <floating>grad_scale
    cdef floating c = <floating>clip_value, wd = <floating>weight_decay, g
    with nogil:
        for i in range(n):
            g = _effective_grad(grad[i], param[i], s, c, wd)
            mean_sq[i] = flush_subnormal(r * mean_sq[i] + r1 * g * g)
            param[i] -= a * g / (fsqrt(mean_sq[i]) + e)


def _adam_update(floating[::1] param,       # OUT, updated in place
                 const floating[::1] grad,  # IN like param
                 floating[::1] m,           # OUT like param, updated in place
                 floating[::1] v,           # OUT like param, updated in place
                 double step_size, double beta1, double beta2, double eps,
                 double inv_sqrt_bc2, double weight_decay=0.0, double decay_factor=1.0,
                 double grad_scale=1.0, double clip_value=INFINITY):
    """m := β₁m + (1−β₁)g;  v := β₂v + (1−β₂)g²;  θ := d·θ − a m / (√v · k + ε).

    With a = α/(1 − β₁ᵗ) and k = 1/√(1 − β₂ᵗ) this is Kingma & Ba's bias-corrected
    θ − α m̂/(√v̂ + ε); d = 1 − αλ is AdamW's decoupled decay (1 for Adam).
    """
    cdef str kernel = "adam_update"
    cdef Py_ssize_t i, n = param.shape[0]
    check_vector(kernel, "grad", grad.shape[0], n)
    check_vector(kernel, "m", m.shape[0], n)
    check_vector(kernel, "v", v.shape[0], n)
    cdef floating a = <floating>step_size, b1 = <floating>beta1, b2 = <floating>beta2
    cdef floating b1c = <floating>(1.0 - beta1), b2c = <floating>(1.0 - beta2)
    cdef floating e = <floating>eps, k = <floating>inv_sqrt_bc2, d = <floating>decay_factor
    cdef floating s = <floating>grad_scale, c = <floating>clip_value
    cdef floating wd = <floating>weight_decay, g
    with nogil:
        for i in range(n):
            g = _effective_grad(grad[i], param[i], s, c, wd)
            m[i] = flush_subnormal(b1 * m[i] + b1c * g)
            v[i] = flush_subnormal(b2 * v[i] + b2c * g * g)
            param[i] = d * param[i] - a * m[i] / (fsqrt(v[i]) * k + e)


def _sum_squares(const floating[::1] x):  # IN
    """Σ xᵢ², accumulated in double."""
    cdef Py_ssize_t n = x.shape[0]
    cdef double total
    if n == 0:  # no x[0] to hand the run
        return 0.0
    with nogil:
        total = sum_squares_run(&x[0], <floating*>NULL, <floating*>NULL, NULL, n)
    return total


def _clip_inplace(floating[::1] x,  # OUT, clipped in place
                  double scale=1.0, double clip_value=INFINITY):
    """x := clip(scale·x, −c, c)."""
    cdef Py_ssize_t i, n = x.shape[0]
    cdef floating s = <floating>scale, c = <floating>clip_value
    with nogil:
        for i in range(n):
            x[i] = _effective_grad(x[i], 0, s, c, 0)


sgd_update = Kernel(_sgd_update, "sgd_update", "param:*!", "grad:*")
momentum_update = Kernel(_momentum_update, "momentum_update", "param:*!", "grad:*",
                         "velocity:*!")
adagrad_update = Kernel(_adagrad_update, "adagrad_update", "param:*!", "grad:*", "sum_sq:*!")
rmsprop_update = Kernel(_rmsprop_update, "rmsprop_update", "param:*!", "grad:*", "mean_sq:*!")
adam_update = Kernel(_adam_update, "adam_update", "param:*!", "grad:*", "m:*!", "v:*!")
sum_squares = Kernel(_sum_squares, "sum_squares", "x:*")
clip_inplace = Kernel(_clip_inplace, "clip_inplace", "x:*!")
