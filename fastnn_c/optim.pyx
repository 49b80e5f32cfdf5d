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
values; a call's arrays all have the parameter's shape.
NaN and inf propagate (the clip comparisons let NaN through).
"""
cimport numpy as cnp
from cython cimport floating
from libc.math cimport INFINITY

from fastnn_c._arrays cimport float_type, flat_data
from fastnn_c._math cimport flush_subnormal, fsqrt, sum_squares_run

cnp.import_array()


cdef inline floating _effective_grad(floating g, floating theta, floating scale,
                                     floating clip, floating decay) noexcept nogil:
    """clip(scale·g, −clip, clip) + decay·θ."""
    g = scale * g
    if g > clip:
        g = clip
    elif g < -clip:
        g = -clip
    return g + decay * theta


# -- loops on checked arrays (n elements each) -------------------------------------------------
cdef void _sgd(floating zero, void* param_, const void* grad_, Py_ssize_t n, double lr,
               double weight_decay, double grad_scale, double clip_value) noexcept nogil:
    cdef floating* param = <floating*>param_
    cdef const floating* grad = <const floating*>grad_
    cdef Py_ssize_t i
    cdef floating a = <floating>lr, s = <floating>grad_scale, c = <floating>clip_value
    cdef floating wd = <floating>weight_decay
    for i in range(n):
        param[i] -= a * _effective_grad(grad[i], param[i], s, c, wd)


cdef void _momentum(floating zero, void* param_, const void* grad_, void* velocity_,
                    Py_ssize_t n, double lr, double momentum, bint nesterov, double weight_decay,
                    double grad_scale, double clip_value) noexcept nogil:
    cdef floating* param = <floating*>param_
    cdef const floating* grad = <const floating*>grad_
    cdef floating* velocity = <floating*>velocity_
    cdef Py_ssize_t i
    cdef floating a = <floating>lr, mu = <floating>momentum, s = <floating>grad_scale
    cdef floating c = <floating>clip_value, wd = <floating>weight_decay, g, v_prev
    cdef floating mu1 = 1 + mu
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


cdef void _adagrad(floating zero, void* param_, const void* grad_, void* sum_sq_, Py_ssize_t n,
                   double lr, double eps, double weight_decay, double grad_scale,
                   double clip_value) noexcept nogil:
    cdef floating* param = <floating*>param_
    cdef const floating* grad = <const floating*>grad_
    cdef floating* sum_sq = <floating*>sum_sq_
    cdef Py_ssize_t i
    cdef floating a = <floating>lr, e = <floating>eps, s = <floating>grad_scale
    cdef floating c = <floating>clip_value, wd = <floating>weight_decay, g
    for i in range(n):
        g = _effective_grad(grad[i], param[i], s, c, wd)
        sum_sq[i] += g * g
        param[i] -= a * g / (fsqrt(sum_sq[i]) + e)


cdef void _rmsprop(floating zero, void* param_, const void* grad_, void* mean_sq_, Py_ssize_t n,
                   double lr, double rho, double eps, double weight_decay, double grad_scale,
                   double clip_value) noexcept nogil:
    cdef floating* param = <floating*>param_
    cdef const floating* grad = <const floating*>grad_
    cdef floating* mean_sq = <floating*>mean_sq_
    cdef Py_ssize_t i
    cdef floating a = <floating>lr, r = <floating>rho, r1 = <floating>(1.0 - rho)
    cdef floating e = <floating>eps, s = <floating>grad_scale
    cdef floating c = <floating>clip_value, wd = <floating>weight_decay, g
    for i in range(n):
        g = _effective_grad(grad[i], param[i], s, c, wd)
        mean_sq[i] = flush_subnormal(r * mean_sq[i] + r1 * g * g)
        param[i] -= a * g / (fsqrt(mean_sq[i]) + e)


cdef void _adam(floating zero, void* param_, const void* grad_, void* m_, void* v_, Py_ssize_t n,
                double step_size, double beta1, double beta2, double eps, double inv_sqrt_bc2,
                double weight_decay, double decay_factor, double grad_scale,
                double clip_value) noexcept nogil:
    cdef floating* param = <floating*>param_
    cdef const floating* grad = <const floating*>grad_
    cdef floating* m = <floating*>m_
    cdef floating* v = <floating*>v_
    cdef Py_ssize_t i
    cdef floating a = <floating>step_size, b1 = <floating>beta1, b2 = <floating>beta2
    cdef floating b1c = <floating>(1.0 - beta1), b2c = <floating>(1.0 - beta2)
    cdef floating e = <floating>eps, k = <floating>inv_sqrt_bc2, d = <floating>decay_factor
    cdef floating s = <floating>grad_scale, c = <floating>clip_value
    cdef floating wd = <floating>weight_decay, g
    for i in range(n):
        g = _effective_grad(grad[i], param[i], s, c, wd)
        m[i] = flush_subnormal(b1 * m[i] + b1c * g)
        v[i] = flush_subnormal(b2 * v[i] + b2c * g * g)
        param[i] = d * param[i] - a * m[i] / (fsqrt(v[i]) * k + e)


cdef double _sum_squares(floating zero, const void* x, Py_ssize_t n) noexcept nogil:
    return sum_squares_run(<const floating*>x, <floating*>NULL, <floating*>NULL, NULL, n)


cdef void _clip(floating zero, void* x_, Py_ssize_t n, double scale,
                double clip_value) noexcept nogil:
    cdef floating* x = <floating*>x_
    cdef Py_ssize_t i
    cdef floating s = <floating>scale, c = <floating>clip_value
    for i in range(n):
        x[i] = _effective_grad(x[i], 0, s, c, 0)


# -- checked entry points: param, grad and state arrays of the same shape --------------------
def sgd_update(param, grad, double lr, double weight_decay=0.0, double grad_scale=1.0,
               double clip_value=INFINITY):
    """θ := θ − α g."""
    cdef str kernel = "sgd_update"
    cdef int t = float_type(param, kernel, "param")
    cdef Py_ssize_t n
    cdef void* p = flat_data(param, kernel, "param", t, None, &n, writable=True)
    cdef void* g = flat_data(grad, kernel, "grad", t, param, &n)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _sgd(<float>0, p, g, n, lr, weight_decay, grad_scale, clip_value)
        else:
            _sgd(<double>0, p, g, n, lr, weight_decay, grad_scale, clip_value)


def momentum_update(param, grad, velocity, double lr, double momentum,
                    double weight_decay=0.0, double grad_scale=1.0, double clip_value=INFINITY,
                    bint nesterov=False):
    """v := μ v − α g;  θ := θ + v   (CS224n/CS231n).

    With ``nesterov``: v' := μ v − α g;  θ := θ − μ v + (1 + μ) v';  v := v'  (CS231n's form).
    """
    cdef str kernel = "momentum_update"
    cdef int t = float_type(param, kernel, "param")
    cdef Py_ssize_t n
    cdef void* p = flat_data(param, kernel, "param", t, None, &n, writable=True)
    cdef void* g = flat_data(grad, kernel, "grad", t, param, &n)
    cdef void* vel = flat_data(velocity, kernel, "velocity", t, param, &n, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _momentum(<float>0, p, g, vel, n, lr, momentum, nesterov, weight_decay, grad_scale,
                      clip_value)
        else:
            _momentum(<double>0, p, g, vel, n, lr, momentum, nesterov, weight_decay, grad_scale,
                      clip_value)


def adagrad_update(param, grad, sum_sq, double lr, double eps, double weight_decay=0.0,
                   double grad_scale=1.0, double clip_value=INFINITY):
    """G := G + g²;  θ := θ − α g / (√G + ε)   (Duchi et al. 2011); G is ``sum_sq``."""
    cdef str kernel = "adagrad_update"
    cdef int t = float_type(param, kernel, "param")
    cdef Py_ssize_t n
    cdef void* p = flat_data(param, kernel, "param", t, None, &n, writable=True)
    cdef void* g = flat_data(grad, kernel, "grad", t, param, &n)
    cdef void* acc = flat_data(sum_sq, kernel, "sum_sq", t, param, &n, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _adagrad(<float>0, p, g, acc, n, lr, eps, weight_decay, grad_scale, clip_value)
        else:
            _adagrad(<double>0, p, g, acc, n, lr, eps, weight_decay, grad_scale, clip_value)


def rmsprop_update(param, grad, mean_sq, double lr, double rho, double eps,
                   double weight_decay=0.0, double grad_scale=1.0, double clip_value=INFINITY):
    """r := ρ r + (1 − ρ) g²;  θ := θ − α g / (√r + ε)   (Tieleman & Hinton 2012); r is ``mean_sq``."""
    cdef str kernel = "rmsprop_update"
    cdef int t = float_type(param, kernel, "param")
    cdef Py_ssize_t n
    cdef void* p = flat_data(param, kernel, "param", t, None, &n, writable=True)
    cdef void* g = flat_data(grad, kernel, "grad", t, param, &n)
    cdef void* avg = flat_data(mean_sq, kernel, "mean_sq", t, param, &n, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _rmsprop(<float>0, p, g, avg, n, lr, rho, eps, weight_decay, grad_scale, clip_value)
        else:
            _rmsprop(<double>0, p, g, avg, n, lr, rho, eps, weight_decay, grad_scale, clip_value)


def adam_update(param, grad, m, v, double step_size, double beta1, double beta2, double eps,
                double inv_sqrt_bc2, double weight_decay=0.0, double decay_factor=1.0,
                double grad_scale=1.0, double clip_value=INFINITY):
    """m := β₁m + (1−β₁)g;  v := β₂v + (1−β₂)g²;  θ := d·θ − a m / (√v · k + ε).

    With a = α/(1 − β₁ᵗ) and k = 1/√(1 − β₂ᵗ) this is Kingma & Ba's bias-corrected
    θ − α m̂/(√v̂ + ε); d = 1 − αλ is AdamW's decoupled decay (1 for Adam).
    """
    cdef str kernel = "adam_update"
    cdef int t = float_type(param, kernel, "param")
    cdef Py_ssize_t n
    cdef void* p = flat_data(param, kernel, "param", t, None, &n, writable=True)
    cdef void* g = flat_data(grad, kernel, "grad", t, param, &n)
    cdef void* first = flat_data(m, kernel, "m", t, param, &n, writable=True)
    cdef void* second = flat_data(v, kernel, "v", t, param, &n, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _adam(<float>0, p, g, first, second, n, step_size, beta1, beta2, eps, inv_sqrt_bc2,
                  weight_decay, decay_factor, grad_scale, clip_value)
        else:
            _adam(<double>0, p, g, first, second, n, step_size, beta1, beta2, eps, inv_sqrt_bc2,
                  weight_decay, decay_factor, grad_scale, clip_value)


def sum_squares(x):
    """Σ xᵢ², accumulated in double."""
    cdef str kernel = "sum_squares"
    cdef int t = float_type(x, kernel, "x")
    cdef Py_ssize_t n
    cdef void* data = flat_data(x, kernel, "x", t, None, &n)
    cdef double total
    with nogil:
        if t == cnp.NPY_FLOAT:
            total = _sum_squares(<float>0, data, n)
        else:
            total = _sum_squares(<double>0, data, n)
    return total


def clip_inplace(x, double scale=1.0, double clip_value=INFINITY):
    """x := clip(scale·x, −c, c)."""
    cdef str kernel = "clip_inplace"
    cdef int t = float_type(x, kernel, "x")
    cdef Py_ssize_t n
    cdef void* data = flat_data(x, kernel, "x", t, None, &n, writable=True)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _clip(<float>0, data, n, scale, clip_value)
        else:
            _clip(<double>0, data, n, scale, clip_value)
