"""scikit-learn's ``MLPClassifier`` and ``MLPRegressor`` on fastnn's compiled kernels.

Change one import::

    from sklearn.neural_network import MLPClassifier   # before
    from fastnn import MLPClassifier                    # after

The parameters are scikit-learn's (names, defaults and meanings, including ``alpha``, the
``learning_rate`` schedules and the ``tol``/``n_iter_no_change`` stopping rule), and so are
the fitted attributes (``coefs_``, ``intercepts_``, ``loss_curve_``, ``n_iter_``, ``t_``,
``classes_``, ...). fastnn's own options (``dtype``, ``batch_norm``, ``dropout``, ``init``,
more activations and solvers) are extra keyword parameters.

With scikit-learn installed the estimators are scikit-learn estimators (``BaseEstimator``
and its mixins; input checks through ``sklearn.utils.validation``) and pass
``sklearn.utils.estimator_checks``; without it they keep the same API and error messages.

How scikit-learn's objective maps onto fastnn
---------------------------------------------
scikit-learn minimises, per mini-batch of m samples,

    L_sk = data loss + (alpha / 2m) ‖W‖²        (W: every weight matrix, no biases)

with the data loss its mean log-loss (classification) or half the mean squared error
(regression). fastnn's losses differ from scikit-learn's only by a constant factor c on
the gradient (c = 1 for softmax and binary log-loss, 1/k for k labels of a multilabel
problem, whose log-loss fastnn averages over the labels, and 2/k for k regression outputs,
where fastnn's MSE is the plain mean). Training therefore adds to the weights' gradient

    λ·W with λ = c · alpha / m

(as the optimizer's ``weight_decay`` for 'adam' and 'sgd', fused into their update pass;
as ``Sequential.l2`` for lbfgs and fastnn's other solvers), so that fastnn's gradient is
exactly c × scikit-learn's, and the optimizers compensate: SGD runs at learning rate η/c,
Adam with ε' = c·ε/√(1 − β₂ᵗ) (scikit-learn adds ε to the uncorrected √v, fastnn's Adam
to the bias-corrected one, so ε' is updated every step). With these, one step of fastnn's
SGD (momentum, Nesterov) or Adam is scikit-learn's step, and ``loss_curve_`` holds
scikit-learn's loss values (data loss × 1/c, or ½ for regression, plus (alpha/2m)‖W‖²
of the weights the batch saw); tests/test_estimator.py checks both against scikit-learn
to 1e-10 in float64. The last mini-batch of an epoch may be smaller than the others; its
λ uses its own m, as scikit-learn's does.

Deprecated and removed parameters (fastnn 0.x ``MLPClassifier``)
----------------------------------------------------------------
``learning_rate`` given as a number still works in 0.2.x: it warns (FutureWarning) and is
used as ``learning_rate_init`` with the "constant" schedule; 0.3.0 refuses it (CHANGELOG.md,
"Deprecation policy"). ``epochs`` (now ``max_iter``),
``optimizer`` (now ``solver``) and ``patience`` (now ``n_iter_no_change``) are gone.

Sparse input
------------
``fit``, ``partial_fit`` and ``predict*`` take a SciPy sparse X (CSR; CSC, COO and the
other formats are converted to CSR, as scikit-learn does). It is never densified: the first
layer runs on the CSR arrays of each mini-batch (``fastnn.layers.Dense``).
"""
import math
import numbers
import types
import warnings

import numpy as np

from fastnn._estimator_input import (
    HAVE_SKLEARN,
    ConvergenceWarning,
    check_class_labels,
    check_is_fitted,
    column_or_1d,
    type_of_target,
    validate_sample_weight,
    validate_X,
    validate_X_y,
)
from fastnn._seeding import INITIAL_WEIGHTS, SHUFFLE, VALIDATION_SPLIT, seed_from, stream
from fastnn._validation import user_stacklevel
from fastnn.callbacks import Callback
from fastnn.layers import Dense
from fastnn.losses import Weighted
from fastnn.network import Sequential, mlp
from fastnn.optimizers import OPTIMIZERS, SGD, AdaGrad, Adam, AdamW, RMSProp
from fastnn.training import fit
from fastnn_c import optim as _optim

__all__ = ["MLPClassifier", "MLPRegressor"]

if HAVE_SKLEARN:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
else:  # the estimator protocol without scikit-learn
    import inspect

    class BaseEstimator:
        """get_params/set_params/repr as scikit-learn's ``BaseEstimator`` provides them."""

        @classmethod
        def _get_param_names(cls):
            return sorted(name for name, p in inspect.signature(cls.__init__).parameters.items()
                          if name != "self" and p.kind != p.VAR_KEYWORD)

        def get_params(self, deep=True):
            """Constructor arguments as a dict (``deep`` is accepted for compatibility)."""
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            """Set constructor arguments; returns self. Unknown names raise ValueError."""
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(f"Invalid parameter {name!r} for estimator {self}. Valid "
                                     f"parameters are: {valid!r}.")
                setattr(self, name, value)
            return self

        def __repr__(self):
            defaults = {k: p.default for k, p in
                        inspect.signature(type(self).__init__).parameters.items()}
            changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                                if not _same(v, defaults.get(k)))
            return f"{type(self).__name__}({changed})"

        def __getstate__(self):
            return self.__dict__

        def __setstate__(self, state):
            self.__dict__.update(state)

    class ClassifierMixin:
        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Mean accuracy of ``predict(X)`` against ``y``."""
            return float(np.average(np.all(np.asarray(self.predict(X)) == np.asarray(y),
                                            axis=tuple(range(1, np.ndim(y)))),
                                    weights=sample_weight))

    class RegressorMixin:
        _estimator_type = "regressor"

        def score(self, X, y, sample_weight=None):
            """Coefficient of determination R² of ``predict(X)`` (averaged over outputs)."""
            return _r2_score(np.asarray(y, dtype=np.float64), self.predict(X), sample_weight)


#: scikit-learn's activation names, and fastnn's others (``fastnn.layers.ACTIVATIONS``).
SKLEARN_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
                       "relu": "relu"}
FASTNN_ACTIVATIONS = ("sigmoid", "hardtanh", "softsign", "leaky_relu", "elu", "selu", "softplus")
#: Solvers: scikit-learn's three, then fastnn optimizers without a scikit-learn counterpart.
SOLVERS = ("adam", "sgd", "lbfgs", "adamw", "rmsprop", "adagrad")
STOCHASTIC_SOLVERS = ("adam", "sgd", "adamw", "rmsprop", "adagrad")
LEARNING_RATES = ("constant", "invscaling", "adaptive")



def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view

class _available_if:
    """Method descriptor that exists only when ``check(estimator)`` holds (as scikit-learn's)."""

    def __init__(self, check, fn):
        self.check, self.fn = check, fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        self.check(obj)  # raises AttributeError
        return types.MethodType(self.fn, obj)


def _stochastic_only(est):
    if est.solver not in STOCHASTIC_SOLVERS:
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{est.solver} is not stochastic.")
    return True


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, training, pickling."""

    # -- parameters ----------------------------------------------------------------------
    def _checked_params(self):
        """The hyper-parameters, validated (ValueError in scikit-learn's wording), as a dict."""
        name = type(self).__name__
        p = {}

        def bad(param, expected, value):
            raise ValueError(f"The {param!r} parameter of {name} must be {expected}. "
                             f"Got {value!r} instead.")

        def real(param, low, high=math.inf, low_open=False, high_open=False):
            v = getattr(self, param)
            ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and not math.isnan(v)
            if ok:
                ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
            if not ok:
                bounds = (f"{'(' if low_open else '['}{float(low)}, "
                          f"{high if high == math.inf else float(high)}"
                          f"{')' if high_open or high == math.inf else ']'}")
                bad(param, f"a float in the range {bounds}", v)
            return float(v)

        def integer(param, low):
            v = getattr(self, param)
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
                bad(param, f"an int in the range [{low}, inf)", v)
            return int(v)

        def boolean(param):
            v = getattr(self, param)
            if not isinstance(v, (bool, np.bool_)):
                bad(param, "an instance of 'bool'", v)
            return bool(v)

        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) for h in hidden):
            bad("hidden_layer_sizes", "an array-like or an int in the range [1, inf)",
                self.hidden_layer_sizes)
        if any(h <= 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden}.")
        p["hidden"] = [int(h) for h in hidden]
        if self.activation in SKLEARN_ACTIVATIONS:
            p["activation"] = SKLEARN_ACTIVATIONS[self.activation]
        elif self.activation in FASTNN_ACTIVATIONS:
            p["activation"] = self.activation
        else:
            bad("activation", "a str among " + repr(set(SKLEARN_ACTIVATIONS) | set(FASTNN_ACTIVATIONS)),
                self.activation)
        if self.solver not in SOLVERS:
            bad("solver", f"a str among {set(SOLVERS)!r}", self.solver)
        p["alpha"] = real("alpha", 0)
        if self.batch_size != "auto":
            integer("batch_size", 1)
        p["learning_rate"], p["learning_rate_init"] = self.learning_rate, None
        if isinstance(self.learning_rate, numbers.Real) and not isinstance(self.learning_rate, bool):
            warnings.warn(f"learning_rate={self.learning_rate!r}: a number as learning_rate is "
                          "deprecated since fastnn 0.2.0 and refused from 0.3.0; learning_rate "
                          f"is now scikit-learn's schedule name {LEARNING_RATES} and the rate "
                          "is learning_rate_init. Using "
                          f"learning_rate_init={self.learning_rate!r}, learning_rate='constant'.",
                          FutureWarning, stacklevel=4)
            p["learning_rate"] = "constant"
            p["learning_rate_init"] = float(self.learning_rate)
        elif self.learning_rate not in LEARNING_RATES:
            bad("learning_rate", f"a str among {set(LEARNING_RATES)!r}", self.learning_rate)
        lr_init = real("learning_rate_init", 0, low_open=True)
        if p["learning_rate_init"] is None:
            p["learning_rate_init"] = lr_init
        if not p["learning_rate_init"] > 0:
            bad("learning_rate", "a positive float", self.learning_rate)
        p["power_t"] = real("power_t", 0)
        p["max_iter"] = integer("max_iter", 1)
        p["shuffle"] = boolean("shuffle")
        p["tol"] = real("tol", 0)
        p["warm_start"] = boolean("warm_start")
        p["momentum"] = real("momentum", 0, 1)
        p["nesterovs_momentum"] = boolean("nesterovs_momentum")
        p["early_stopping"] = boolean("early_stopping")
        p["validation_fraction"] = real("validation_fraction", 0, 1, high_open=True)
        p["beta_1"] = real("beta_1", 0, 1, high_open=True)
        p["beta_2"] = real("beta_2", 0, 1, high_open=True)
        p["epsilon"] = real("epsilon", 0, low_open=True)
        if self.n_iter_no_change == np.inf:
            p["n_iter_no_change"] = math.inf
        else:
            p["n_iter_no_change"] = integer("n_iter_no_change", 1)
        p["max_fun"] = integer("max_fun", 1)
        if not (isinstance(self.verbose, (numbers.Integral, bool, np.bool_))):
            bad("verbose", "an int or a bool", self.verbose)
        rs = self.random_state
        if not (rs is None or isinstance(rs, (numbers.Integral, np.random.RandomState,
                                              np.random.Generator))) or isinstance(rs, bool):
            bad("random_state", "an int, a numpy.random.RandomState instance or None", rs)
        if self.batch_norm not in (False, True, "before", "after"):
            bad("batch_norm", "False, True, 'before' or 'after'", self.batch_norm)
        p["dropout"] = real("dropout", 0, 1, high_open=True)
        try:
            dtype_ok = self.dtype is None or np.dtype(self.dtype) in (np.float32, np.float64)
        except TypeError:
            dtype_ok = False
        if not dtype_ok:
            bad("dtype", "'float32', 'float64' or None", self.dtype)
        return p

    def _compute_dtype(self, X):
        """fastnn's compute dtype: ``dtype``, or scikit-learn's rule (float32 stays, else float64)."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        kind = getattr(getattr(X, "dtype", None), "type", None)
        return np.dtype(np.float32) if kind is np.float32 else np.dtype(np.float64)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y; returns self.

        Training runs up to ``max_iter`` epochs (stochastic solvers) or L-BFGS iterations,
        stopping by scikit-learn's rule (see the class docstring). ``sample_weight``
        (n_samples,) weighs each sample's loss: each batch minimises scikit-learn's (>= 1.7)
        weighted mean loss Σ wᵢ ℓᵢ / Σ wᵢ + (alpha / 2 Σ wᵢ) ‖W‖², and early stopping's
        validation score is weighted too.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        params = self._checked_params()
        if params["early_stopping"] and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not self.__sklearn_is_fitted__() or (not params["warm_start"] and not incremental)
        dtype = self._net_dtype if not first_pass else self._compute_dtype(X)
        X, y = validate_X_y(self, X, y, reset=first_pass, dtype=dtype, y_numeric=self._y_numeric)
        y = column_or_1d(y)
        sample_weight = validate_sample_weight(sample_weight, X)
        # Everything that can fail on the input is checked before the estimator changes.
        targets, target_state = self._encode_targets(y, first_pass, incremental, classes, dtype)
        n_outputs = (targets.shape[1] if targets.ndim == 2
                     else len(target_state.get("classes_", getattr(self, "classes_", ()))))
        if not first_pass and n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} outputs, but {type(self).__name__} was fitted "
                             f"with {self.n_outputs_}")
        if self.batch_norm and X.shape[0] < 2:
            raise ValueError(f"batch_norm needs at least 2 samples to train (batch statistics), "
                             f"got n_samples = {X.shape[0]}")
        if params["early_stopping"] and self.solver != "lbfgs":
            self._check_stratifiable(targets, target_state)
        if (params["early_stopping"] and self.solver != "lbfgs"
                and math.ceil(params["validation_fraction"] * X.shape[0]) < 2):
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        saved = dict(self.__dict__)
        try:
            self.__dict__.update(target_state)
            if first_pass:
                self._initialize(X.shape[1], n_outputs, params, dtype)
        except BaseException:  # e.g. an unknown init: the previous model stays
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, targets, sample_weight, params)
        else:
            self._fit_stochastic(X, targets, sample_weight, params, incremental)
        if not all(np.isfinite(p.data).all() for p in self.net_.parameters()):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _initialize(self, n_features, n_outputs, params, dtype):

        self._seed = seed_from(self.random_state)
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(params["hidden"]) + 2
        self.out_activation_ = self._output_activation()
        self._net_dtype = dtype
        self._epochs_done = 0
        init_rng = stream(self._seed, INITIAL_WEIGHTS)
        # init=None: scikit-learn's initial weights, drawn below ("zeros" skips a draw here)
        self.net_ = mlp([n_features, *params["hidden"], n_outputs],
                        activation=params["activation"], loss=self._fastnn_loss(),
                        init="zeros" if self.init is None else self.init, rng=init_rng,
                        dtype=dtype, batch_norm=self.batch_norm, dropout=params["dropout"])
        if self.init is None:
            self._sklearn_init(params["activation"])
        self.net_.eval()
        self._optimizer = None
        for key in ("loss_curve_", "best_loss_", "validation_scores_", "best_validation_score_",
                    "loss_"):
            self.__dict__.pop(key, None)
        if self.solver in STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if params["early_stopping"]:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _sklearn_init(self, activation):
        """scikit-learn's ``_init_coef``: weights and biases of each layer from
        U[−b, b], b = √(f / (fan_in + fan_out)), f = 2 for the logistic activation and 6
        otherwise (Glorot & Bengio 2010, eq. 16, whose f is 6), drawn in scikit-learn's order
        from its RandomState, so an int ``random_state`` gives scikit-learn's initial weights."""
        rs = self.random_state
        if not isinstance(rs, np.random.RandomState):
            rs = np.random.RandomState(rs if isinstance(rs, numbers.Integral) else
                                       self._seed % 2**32)
        factor = 2.0 if activation == "sigmoid" else 6.0
        for layer in self._dense_layers():
            bound = math.sqrt(factor / (layer.in_features + layer.out_features))
            layer.weight.copy_(rs.uniform(-bound, bound, (layer.in_features, layer.out_features)))
            intercept = rs.uniform(-bound, bound, layer.out_features)
            if layer.bias is not None:  # a batch norm's β replaces the bias
                layer.bias.copy_(intercept)

    def _gradient_scale(self):
        """c: fastnn's gradient is c × scikit-learn's (see the module docstring)."""
        return 1.0

    def _data_scale(self):
        """scikit-learn's data loss is fastnn's × this (1/c for classification)."""
        return 1.0 / self._gradient_scale()

    def _sklearn_loss(self, data_loss, penalty_sq, m, alpha):
        """scikit-learn's loss of an m-sample batch from fastnn's data loss and Σ‖W‖²."""
        value = data_loss * self._data_scale()
        return value + alpha / (2.0 * m) * penalty_sq if alpha else value

    def _make_optimizer(self, params):

        c = self._gradient_scale()
        net_params = self.net_.parameters()
        lr = params["learning_rate_init"]
        if self.solver == "sgd":
            momentum = params["momentum"]
            return SGD(net_params, lr=lr / c, momentum=momentum,
                              nesterov=bool(params["nesterovs_momentum"] and momentum > 0))
        if self.solver == "adam":
            return Adam(net_params, lr=lr, betas=(params["beta_1"], params["beta_2"]),
                               eps=self._adam_eps(params, 1))
        if self.solver == "adamw":
            return AdamW(net_params, lr=lr, betas=(params["beta_1"], params["beta_2"]),
                                eps=params["epsilon"])
        if self.solver == "rmsprop":
            return RMSProp(net_params, lr=lr)
        return AdaGrad(net_params, lr=lr)

    def _adam_eps(self, params, t):
        """ε' for fastnn's Adam step t that makes it scikit-learn's step (module docstring)."""
        return self._gradient_scale() * params["epsilon"] / math.sqrt(1.0 - params["beta_2"] ** t)

    def _fit_stochastic(self, X, y, sample_weight, params, incremental):

        if not incremental or self._optimizer is None:
            self._optimizer = self._make_optimizer(params)
            self._sk_learning_rate = params["learning_rate_init"]
        w_val = None
        if params["early_stopping"]:
            train, val = self._validation_split(y, params["validation_fraction"])
            X, X_val, y, y_val = X[train], X[val], y[train], y[val]
            if sample_weight is not None:
                sample_weight, w_val = sample_weight[train], sample_weight[val]
        else:
            X_val = y_val = None
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=3)
            batch_size = int(np.clip(self.batch_size, 1, n))
        # Out of core (to come, in fastnn.fit): a memmap X already in the compute dtype passes
        # validate_data without a copy (its finiteness scan reads pages, allocates nothing), so
        # streaming needs only fit to batch it; an iterable of batches will also need each
        # batch's size before its step (alpha's λ = c·alpha/m), which _SklearnRules now
        # derives from n and batch_size.
        rules = _SklearnRules(self, params, n, batch_size, X_val, y_val, w_val, incremental)
        start = self._epochs_done
        self.n_iter_ = 0
        loss_fn = self.net_.loss_fn
        if sample_weight is not None:
            # the weights ride with the targets through fit's shuffling and batching
            self.net_.loss_fn = Weighted(loss_fn, on_batch=rules.on_weight_sum)
            y = Weighted.records(y, sample_weight)
        try:
            fit(self.net_, X, y, optimizer=self._optimizer,
                epochs=start + (1 if incremental else params["max_iter"]),
                initial_epoch=start, batch_size=batch_size, callbacks=[rules],
                rng=_shuffle_seed(self._seed), shuffle=params["shuffle"],
                verbose=0, on_nonfinite="ignore")
        finally:
            self.net_.loss_fn = loss_fn
            self.net_.l2 = 0.0
            self.net_.eval()
        if params["early_stopping"] and rules.best_state is not None:
            self.net_.load_state_dict(rules.best_state)

    def _fit_lbfgs(self, X, y, sample_weight, params):
        try:
            import scipy.optimize
        except ImportError:  # pragma: no cover
            raise ImportError("solver='lbfgs' needs SciPy (scipy.optimize): pip install scipy, "
                              "or choose solver='adam' or 'sgd'") from None
        net = self.net_
        # scikit-learn divides the L2 term by the total weight (n without weights)
        n = X.shape[0] if sample_weight is None else float(sample_weight.sum(dtype=np.float64))
        c = self._gradient_scale()
        alpha = params["alpha"]
        net.l2 = c * alpha / n
        loss_fn = net.loss_fn
        if sample_weight is not None:
            net.loss_fn = Weighted(loss_fn)
            y = Weighted.records(y, sample_weight)
        parameters = net.parameters()
        shapes = [p.data.shape for p in parameters]
        bounds = np.cumsum([0] + [p.data.size for p in parameters])
        x0 = np.concatenate([p.data.ravel() for p in parameters]).astype(np.float64)
        grad = np.empty_like(x0)
        last = {}

        def loss_and_grad(x):
            for p, shape, lo, hi in zip(parameters, shapes, bounds[:-1], bounds[1:]):
                np.copyto(p.values, x[lo:hi].reshape(shape), casting="unsafe")
                p.mark_changed()
            value = net.loss(X, y)
            net.backward()
            for p, lo, hi in zip(parameters, bounds[:-1], bounds[1:]):
                grad[lo:hi] = p.grad.ravel()
            np.divide(grad, c, out=grad)
            if not np.isfinite(value):
                value = np.inf
            sq = sum(_optim.sum_squares(w) for w in self.coefs_) if alpha else 0.0
            last["sklearn"] = self._sklearn_loss(value - net.l2 / 2 * sq, sq, n, alpha)
            return value / c, grad

        net.train()
        try:
            result = scipy.optimize.minimize(
                loss_and_grad, x0, method="L-BFGS-B", jac=True,
                options={"maxfun": params["max_fun"], "maxiter": params["max_iter"],
                         "gtol": params["tol"]})
            final_value = loss_and_grad(result.x)[0]
        finally:
            net.loss_fn = loss_fn
            net.l2 = 0.0
            net.eval()
        self.n_iter_ = int(min(result.nit, params["max_iter"]))
        self.loss_ = float(last.get("sklearn", final_value))
        if result.status != 0:
            message = result.message.decode() if isinstance(result.message, bytes) else result.message
            warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) "
                          f"(status={result.status}):\n{message}\n\nIncrease the number of "
                          f"iterations to improve the convergence (max_iter={params['max_iter']}).\n"
                          "You might also want to scale the data as shown in:\n    "
                          "https://scikit-learn.org/stable/modules/preprocessing.html",
                          ConvergenceWarning, stacklevel=user_stacklevel())
        if self.verbose:
            print(f"L-BFGS-B: {result.nit} iterations, {result.nfev} loss evaluations, "
                  f"loss = {self.loss_:.8f}")

    def _check_stratifiable(self, targets, target_state):
        """scikit-learn's error for a class with one member, which a stratified split cannot
        hold out (its labels as scikit-learn's split sees them: the binarized y)."""
        kind = target_state.get("_kind", getattr(self, "_kind", None))
        if not self._is_classifier or kind == "multilabel":
            return
        classes = target_state.get("classes_", getattr(self, "classes_", None))
        labels, counts = np.unique(targets.reshape(len(targets), -1)[:, 0] if targets.ndim == 2
                                   else targets, return_counts=True)
        if counts.min() >= 2:
            return
        few = labels[counts < 2]
        if targets.ndim == 2:  # binary: one boolean column
            names = [str(bool(v)) for v in few]
        else:  # multiclass: a row of the one-hot indicator, joined as scikit-learn does
            names = [" ".join(str(j == v) for j in range(len(classes))) for v in few]
        raise ValueError("The least populated classes in y have only 1 member, which is too "
                         "few. The minimum number of groups for any class cannot be less than "
                         f"2. Classes with too few members are: {names}")

    def _validation_split(self, y, fraction):
        """(train, val): row indices, ``fraction`` held out, stratified for single-output
        classification (as scikit-learn's ``train_test_split(stratify=y)``)."""
        rng = stream(self._seed, VALIDATION_SPLIT)
        n = y.shape[0]
        n_val = int(math.ceil(fraction * n))
        if self._is_classifier and (y.ndim == 1 or y.shape[1] == 1):
            labels = y.reshape(len(y), -1)[:, 0] if y.ndim == 2 else y
            classes, counts = np.unique(labels, return_counts=True)
            share = counts * n_val / n
            take = np.floor(share).astype(int)
            for i in np.argsort(take - share)[: n_val - take.sum()]:
                take[i] += 1
            val = np.concatenate([rng.permutation(np.flatnonzero(labels == k))[:t]
                                  for k, t in zip(classes, take)])
        else:
            val = rng.permutation(n)[:n_val]
        mask = np.ones(n, dtype=bool)
        mask[val] = False
        return np.flatnonzero(mask), np.sort(val)

    # -- prediction ----------------------------------------------------------------------
    def __sklearn_is_fitted__(self):
        return "net_" in self.__dict__

    def _forward(self, X):
        check_is_fitted(self)
        return validate_X(self, X, reset=False, dtype=self._net_dtype)

    @staticmethod
    def _output_dtype(X):
        """The dtype scikit-learn's MLP would return for X: float32 for float32 X, else float64
        (the network may compute in float32 either way)."""
        return np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64

    # -- fitted attributes ---------------------------------------------------------------
    def _dense_layers(self):
        return [layer for layer in self.net_.layers if isinstance(layer, Dense)]

    @property
    def coefs_(self):
        """Weight matrices, one (fan_in, fan_out) array per layer: read-only views of the
        network's own arrays; assign a list to ``coefs_`` to change them."""
        check_is_fitted(self)
        return [_read_only(layer.weight.data) for layer in self._dense_layers()]

    @coefs_.setter
    def coefs_(self, values):
        for layer, value in zip(self._dense_layers(), values, strict=True):
            layer.weight.copy_(np.asarray(value).reshape(layer.weight.data.shape))

    @property
    def intercepts_(self):
        """Bias vectors, one per layer (zeros for layers whose bias a batch norm replaces)."""
        check_is_fitted(self)
        return [_read_only(layer.bias.data) if layer.bias is not None
                else np.zeros(layer.out_features, dtype=layer.dtype)
                for layer in self._dense_layers()]

    @intercepts_.setter
    def intercepts_(self, values):
        for layer, value in zip(self._dense_layers(), values, strict=True):
            if layer.bias is not None:
                layer.bias.copy_(np.asarray(value).reshape(layer.bias.data.shape))

    # -- pickling: plain arrays, no scratch buffers ------------------------------------
    def __getstate__(self):
        state = dict(super().__getstate__())
        net = state.pop("net_", None)
        if net is not None:
            state["_net_state"] = {"config": net.get_config(), "arrays": net.state_dict()}
        opt = state.pop("_optimizer", None)
        if opt is not None:
            state["_optimizer_state"] = {"class": type(opt).__name__, "config": opt.get_config(),
                                         "arrays": opt.state_dict()}
        return state

    def __setstate__(self, state):

        state = dict(state)
        net_state = state.pop("_net_state", None)
        opt_state = state.pop("_optimizer_state", None)
        super().__setstate__(state)
        if net_state is not None:
            # Fresh writable arrays: a joblib memory map of the pickle is read-only.
            net = Sequential.from_config(net_state["config"])
            net.load_state_dict(net_state["arrays"])
            net.eval()
            self.net_ = net
            if opt_state is not None:
                # a closed registry, as model files use: a pickle names a class, never code
                cls = {c.__name__: c for c in OPTIMIZERS.values()}[opt_state["class"]]
                config = dict(opt_state["config"])
                opt = cls(net.parameters(), **config)
                arrays = {k: (np.array(v) if isinstance(v, np.ndarray) else v)
                          for k, v in opt_state["arrays"].items()}
                opt.load_state_dict(arrays)
                self._optimizer = opt

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = False
        tags.target_tags.multi_output = True
        return tags


class _SklearnRules(Callback):
    """scikit-learn's bookkeeping inside ``fastnn.fit``.

    Per batch: the L2 coefficient for the batch's size, Adam's ε for the next step, the
    epoch's loss in scikit-learn's units. Per epoch: ``n_iter_``, ``t_``, ``loss_curve_``,
    the validation score, the learning-rate schedule and the ``tol``/``n_iter_no_change``
    stopping rule, exactly as ``sklearn.neural_network.MLP*._fit_stochastic``.
    """

    def __init__(self, est, params, n, batch_size, X_val, y_val, w_val, incremental):
        self.est, self.p, self.n, self.batch_size = est, params, n, batch_size
        self.X_val, self.y_val, self.w_val, self.incremental = X_val, y_val, w_val, incremental
        self.weight_sum = None  # Σ w of the current batch, with sample weights
        self.c = est._gradient_scale()
        self.n_batches = -(-n // batch_size)
        self.last_size = n - (self.n_batches - 1) * batch_size
        self.alpha = params["alpha"]
        # alpha's gradient: fused into the optimizer's update as weight decay (adam, sgd: the
        # gradient becomes g + λθ on the weights, exactly the L2 term's), else the network's l2
        self.decay_in_optimizer = est.solver in ("adam", "sgd")
        self.best_state = None
        self.net = est.net_
        self.optimizer = est._optimizer
        self.sq = 0.0

    def _batch_l2(self, m):
        value = self.c * self.alpha / m
        if self.decay_in_optimizer:
            self.optimizer.weight_decay = value
        else:
            self.net.l2 = value

    def on_weight_sum(self, weight_sum):
        """Before a weighted batch's step: scikit-learn's L2 term is (alpha / 2 Σ w) ‖W‖²."""
        self.weight_sum = weight_sum
        if weight_sum > 0:
            self._batch_l2(weight_sum)

    def _penalty_sq(self):
        """Σ‖W‖² of the current weights (those the next batch's loss sees), on fastnn's kernel:
        NumPy's dot wakes NumPy's BLAS threads, whose spinning starved fastnn's (a float64
        fit of digits ran 10x slower)."""
        return sum(_optim.sum_squares(w) for w in self.est.coefs_) if self.alpha else 0.0

    def on_train_begin(self, trainer):
        self._set_lr()
        if self.est.solver == "adam":
            self.optimizer.eps = self.est._adam_eps(self.p, self.optimizer.step_count + 1)

    def on_train_end(self, trainer):
        if self.decay_in_optimizer:
            self.optimizer.weight_decay = 0.0
        self.net.l2 = 0.0

    def on_epoch_begin(self, trainer, epoch):
        self.batch = 0
        self.accumulated = 0.0
        self._batch_l2(self.batch_size if self.n_batches > 1 else self.last_size)
        self.sq = self._penalty_sq()

    def on_batch_end(self, trainer, step, loss):
        m = self.batch_size if self.batch < self.n_batches - 1 else self.last_size
        data_loss = loss - self.net.l2 / 2 * self.sq
        weight = m if not self.weight_sum else self.weight_sum
        # scikit-learn sums each batch's loss times its number of rows, weighted or not
        self.accumulated += self.est._sklearn_loss(data_loss, self.sq, weight, self.alpha) * m
        self.batch += 1
        if self.batch == self.n_batches - 1:
            self._batch_l2(self.last_size)
        if self.est.solver == "adam":
            self.optimizer.eps = self.est._adam_eps(self.p, self.optimizer.step_count + 1)
        self.sq = self._penalty_sq()

    def _set_lr(self):
        if self.est.solver == "sgd":
            self.optimizer.lr = self.est._sk_learning_rate / self.c

    def on_epoch_end(self, trainer, epoch, metrics):
        est, p = self.est, self.p
        est._epochs_done = epoch
        est.n_iter_ += 1
        est.loss_ = self.accumulated / self.n
        est.t_ += self.n
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        self._update_no_improvement_count()
        if est.solver == "sgd" and p["learning_rate"] == "invscaling":
            est._sk_learning_rate = p["learning_rate_init"] / (est.t_ + 1) ** p["power_t"]
        if est._no_improvement_count > p["n_iter_no_change"]:
            if p["early_stopping"]:
                msg = ("Validation score did not improve more than tol=%f for %d consecutive "
                       "epochs." % (p["tol"], p["n_iter_no_change"]))
            else:
                msg = ("Training loss did not improve more than tol=%f for %d consecutive "
                       "epochs." % (p["tol"], p["n_iter_no_change"]))
            if self._trigger_stopping(msg):
                trainer.stop_training = True
            else:
                est._no_improvement_count = 0
        self._set_lr()
        if self.incremental or trainer.stop_training:
            trainer.stop_training = True
            return
        if est.n_iter_ == p["max_iter"]:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                          "optimization hasn't converged yet." % p["max_iter"], ConvergenceWarning,
                          stacklevel=user_stacklevel())

    def _trigger_stopping(self, msg):
        est = self.est
        if est.solver != "sgd" or self.p["learning_rate"] != "adaptive":
            if est.verbose:
                print(msg + " Stopping.")
            return True
        if est._sk_learning_rate <= 1e-6:
            if est.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        est._sk_learning_rate /= 5.0
        if est.verbose:
            print(msg + " Setting learning rate to %f" % est._sk_learning_rate)
        return False

    def _update_no_improvement_count(self):
        est, tol = self.est, self.p["tol"]
        if self.p["early_stopping"]:
            score = est._validation_score(self.X_val, self.y_val, self.w_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_state = self.net.state_dict()
        else:
            if est.loss_curve_[-1] > est.best_loss_ - tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_curve_[-1] < est.best_loss_:
                est.best_loss_ = est.loss_curve_[-1]


_COMMON_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_layers - 2,) or int, default=(100,)
        Widths of the hidden layers.
    activation : str, default='relu'
        Hidden activation: scikit-learn's 'identity', 'logistic', 'tanh', 'relu', or
        fastnn's 'sigmoid' (= 'logistic'), 'hardtanh', 'softsign', 'leaky_relu', 'elu',
        'selu', 'softplus'.
    solver : {'adam', 'sgd', 'lbfgs', 'adamw', 'rmsprop', 'adagrad'}, default='adam'
        'adam' and 'sgd' are scikit-learn's stochastic solvers, step for step (see
        ``fastnn.estimator``); 'lbfgs' is ``scipy.optimize.minimize(method="L-BFGS-B")``
        on fastnn's compiled loss and gradient over the whole data. 'adamw', 'rmsprop' and
        'adagrad' are fastnn's optimizers (default hyper-parameters, lr =
        ``learning_rate_init``), with scikit-learn's epochs and stopping rule.
    alpha : float, default=0.0001
        scikit-learn's L2 term: (alpha / 2m)·‖W‖² added to the loss of an m-sample batch
        (of the whole data for lbfgs); biases are not penalised.
    batch_size : int or 'auto', default='auto'
        Mini-batch size; 'auto' is min(200, n_samples).
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        scikit-learn's schedule, for solver='sgd': 'invscaling' sets the rate to
        learning_rate_init / (t_ + 1)^power_t after each epoch; 'adaptive' divides it by 5
        whenever the stopping rule would stop, until it is ≤ 1e-6. (A number here is the
        deprecated spelling of learning_rate_init: it warns, and 0.3.0 refuses it.)
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5
    max_iter : int, default=200
        Maximum number of epochs (stochastic solvers) or L-BFGS iterations.
    shuffle : bool, default=True
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the validation split, the shuffling and dropout. An int
        gives the same model every time; a RandomState is drawn from once per fit.
    tol : float, default=1e-4
        Training stops when the training loss (or, with early_stopping, the validation
        score) has not improved by at least tol for more than n_iter_no_change
        consecutive epochs; for lbfgs it is scipy's gtol.
    verbose : bool or int, default=False
        Print scikit-learn's progress lines.
    warm_start : bool, default=False
        Start ``fit`` from the previous solution (a new optimizer, as scikit-learn does).
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` (stratified for single-output classification),
        score each epoch on it, stop by the rule above and keep the best epoch's weights.
    validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : float, default=0.9, 0.999, 1e-8
        Adam's, with scikit-learn's placement of epsilon.
    n_iter_no_change : int, default=10
    max_fun : int, default=15000
        Maximum number of loss evaluations of lbfgs.
    batch_norm : bool or {'before', 'after'}, default=False
        fastnn extra: batch normalization in each hidden layer (``fastnn.mlp``).
    dropout : float, default=0.0
        fastnn extra: dropout probability after each hidden activation.
    init : str or None, default=None
        None: scikit-learn's initialization, weights and biases from U[−b, b] with
        b = √(f / (fan_in + fan_out)), f = 2 for 'logistic' and 6 otherwise (Glorot & Bengio
        2010, eq. 16), drawn from ``RandomState(random_state)`` in scikit-learn's order, so
        an int ``random_state`` starts from scikit-learn's weights. fastnn extra: the name of
        a ``fastnn.initializers`` initializer (e.g. 'he_normal'; biases zero).
    dtype : 'float32', 'float64' or None, default=None
        The compute dtype. None is scikit-learn's rule: float32 input trains and predicts in
        float32, anything else in float64. fastnn extra: 'float32' computes in float32 for
        any input (the faster choice for float64 data; predictions are then returned as
        float64).
"""

_COMMON_ATTRIBUTES = """
    loss_ : float
        The last epoch's loss (scikit-learn's units, penalty included).
    best_loss_ : float or None
        Smallest loss_curve_ value (None with early_stopping).
    loss_curve_ : list of float
        Loss per epoch (stochastic solvers only).
    validation_scores_ : list of float or None
        Validation score per epoch with early_stopping.
    best_validation_score_ : float or None
    t_ : int
        Training samples seen by the solver.
    coefs_ : list of ndarray (fan_in, fan_out)
        The weight matrices, as read-only views of the network's own arrays: assigning a
        list (``clf.coefs_ = [...]``) changes the model; writing into them in place raises,
        since prediction keeps the weights packed (see ``fastnn.layers.Parameter``).
    intercepts_ : list of ndarray (fan_out,)
        Likewise for the biases.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when X had string feature names (a pandas DataFrame).
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit call.
    n_layers_ : int
    n_outputs_ : int
    out_activation_ : str
    net_ : fastnn.Sequential
        The trained network (e.g. for ``fastnn.save``).
"""

_DIFFERENCES = """
    Differences from scikit-learn
    -----------------------------
    - ``random_state`` gives scikit-learn's initial weights, but the shuffling and the
      ``early_stopping`` split (stratified as scikit-learn's) are drawn from fastnn's own
      generators, so the batches and the held-out rows differ from scikit-learn's.
    - scikit-learn's private attributes (``_optimizer``, ``_loss_grad_lbfgs``, ...) are not
      mirrored; ``_no_improvement_count`` is.
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's MLPClassifier on fastnn's kernels.

    Binary problems have one logistic output unit, multiclass a softmax over the classes,
    multilabel (y an indicator matrix) one logistic unit per label, as in scikit-learn.
    """ + _COMMON_DOC + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The sorted class labels (for multilabel y, 0 .. n_labels - 1).
    """ + _COMMON_ATTRIBUTES + _DIFFERENCES + """
    - With a single class in y, ``predict_proba`` has one column (of ones), as
      ``classes_``; scikit-learn's has two.

    Examples
    --------
    >>> from fastnn import MLPClassifier
    >>> clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X_train, y_train)
    >>> clf.score(X_test, y_test)
    """

    _is_classifier = True
    _y_numeric = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 batch_norm=False, dropout=0.0, init=None, dtype=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.init = init
        self.dtype = dtype

    # -- targets -------------------------------------------------------------------------
    def _encode_targets(self, y, first_pass, incremental, classes, dtype):
        """(targets for the network, fitted attributes to set); nothing is set here."""
        check_class_labels(y)
        kind = type_of_target(y)
        if kind.endswith("multioutput"):
            raise ValueError("Multioutput target data is not supported with label binarization")
        state = {}
        if kind == "multilabel-indicator":
            if not first_pass and self._kind != "multilabel":
                raise ValueError(f"y is multilabel, but {type(self).__name__} was fitted on "
                                 "single-label targets")
            if first_pass:
                state["classes_"] = np.arange(y.shape[1])
                state["_kind"] = "multilabel"
            return np.ascontiguousarray(y, dtype=dtype), state
        if first_pass:
            if incremental:
                known = np.unique(np.asarray(classes))
            else:
                known = np.unique(y)
            if incremental and len(np.setdiff1d(np.unique(y), known)):
                raise ValueError(f"`y` has classes not in `classes`. `classes` has {known}. "
                                 f"'y' has {np.unique(y)}.")
            state["classes_"] = known
            # one class: scikit-learn's binarized target is all 0 and predict returns it
            state["_kind"] = "binary" if len(known) <= 2 else "multiclass"
        else:
            known = self.classes_
            seen = np.unique(y)
            if self.warm_start and not incremental:
                if set(seen) != set(known):
                    raise ValueError("warm_start can only be used where `y` has the same classes "
                                     f"as in the previous call to fit. Previously got {known}, "
                                     f"`y` has {seen}")
            elif len(np.setdiff1d(seen, known)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{known}. 'y' has {seen}.")
            if self._kind == "multilabel":
                raise ValueError(f"{type(self).__name__} was fitted on multilabel targets; y "
                                 "must be an indicator matrix")
        index = np.searchsorted(known, y)
        if state.get("_kind", getattr(self, "_kind", None)) == "binary":
            return (index == 1).astype(dtype).reshape(-1, 1), state
        return index.astype(np.int64), state

    def _output_activation(self):
        return "softmax" if self._kind == "multiclass" else "logistic"

    def _fastnn_loss(self):
        return "softmax_cross_entropy" if self._kind == "multiclass" else "binary_cross_entropy"

    def _gradient_scale(self):
        # fastnn's binary cross-entropy averages over the k labels, scikit-learn's sums them
        return 1.0 / self.n_outputs_ if self._kind == "multilabel" else 1.0

    # -- partial_fit ---------------------------------------------------------------------
    def _partial_fit(self, X, y, sample_weight=None, classes=None):
        """Update the model with one epoch over (X, y); returns self.

        ``classes``, every label that will ever occur, is required on the first call and
        may be omitted afterwards (if given, it must not change), as in scikit-learn.
        ``sample_weight`` as in ``fit``.
        """
        known = getattr(self, "classes_", None)
        if known is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if (classes is not None and known is not None and self._kind != "multilabel"
                and not np.array_equal(known, np.unique(classes))):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                             f"partial_fit, was: {known!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    partial_fit = _available_if(_stochastic_only, _partial_fit)

    # -- prediction ----------------------------------------------------------------------
    def predict(self, X):
        """Predicted labels (elements of ``classes_``; an indicator matrix for multilabel)."""
        return self._predict(self._forward(X))

    def _predict(self, X):
        """``predict`` of a validated X."""
        # binary and multilabel: logit > 0, i.e. probability > 0.5 (scikit-learn's threshold);
        # from the logits, as the network's loss is a Weighted one while fit scores an epoch
        logits = self.net_.decision_function(X)
        if self._kind == "multilabel":
            return (logits > 0).astype(np.int64)
        index = logits.argmax(axis=1) if self._kind == "multiclass" else logits > 0
        if len(self.classes_) == 1:
            return np.full(X.shape[0], self.classes_[0])
        return self.classes_[index.reshape(-1).astype(np.int64)]

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``.

        Computed from the network's logits in the output dtype (float64 unless X is float32,
        as scikit-learn), so a very confident float32 network still gives probabilities
        strictly between 0 and 1 there.
        """
        dtype = self._output_dtype(X)
        X = self._forward(X)
        logits = self.net_.decision_function(X).astype(dtype, copy=False)
        if len(self.classes_) == 1:  # the one class seen in fit
            return np.ones((X.shape[0], 1), dtype=dtype)
        if self._kind == "multiclass":
            logits -= logits.max(axis=1, keepdims=True)
            proba = np.exp(logits, out=logits)
            proba /= proba.sum(axis=1, keepdims=True)
            return proba
        proba = np.exp(-np.logaddexp(0, -logits))  # σ(z), no overflow
        if self._kind == "binary":
            return np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X):
        """Logarithm of ``predict_proba``."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def _validation_score(self, X, y, sample_weight):
        """Accuracy on the validated held-out rows, weighted by ``sample_weight`` if given."""
        pred = self._predict(X)
        if self._kind == "multilabel":
            hits = np.all(pred == y.astype(int), axis=1)
        elif self._kind == "binary":
            hits = pred == self.classes_[np.minimum(y[:, 0].astype(np.int64),
                                                    len(self.classes_) - 1)]
        else:
            hits = pred == self.classes_[y]
        return float(np.average(hits, weights=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's MLPRegressor on fastnn's kernels.

    Squared error with the identity output, or Poisson with the log link; one unit per
    target column (multi-output).
    """ + """
    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        'squared_error': the network's output is the prediction, and the loss is
        (1/2n) Σᵢⱼ (ŷᵢⱼ − yᵢⱼ)². 'poisson': the network's output is log ŷ (the log link,
        ŷ = exp(output)), the loss half the Poisson deviance (1/n) Σᵢⱼ [ŷᵢⱼ − yᵢⱼ log ŷᵢⱼ]
        up to terms free of ŷ, for counts y ≥ 0 (scikit-learn's ``HalfPoissonLoss``).""" + \
        _COMMON_DOC.replace("\n    Parameters\n    ----------", "") + """
    Attributes
    ----------""" + _COMMON_ATTRIBUTES + _DIFFERENCES + """
    - Multi-output lbfgs minimises the objective whose gradient scikit-learn uses,
      (1/2n) Σᵢⱼ (ŷᵢⱼ − yᵢⱼ)² + penalty; scikit-learn's lbfgs evaluates its reported loss,
      the mean over outputs of that data term, with the same gradient (so its line search
      sees a loss n_outputs times flatter than its gradient). The stochastic solvers match
      scikit-learn exactly, loss_curve_ included.
    - loss='poisson': ``loss_curve_`` leaves out the deviance's terms free of the
      prediction, Σ [y log y − y] / n, which scikit-learn's reported loss includes (the
      gradients and steps are the same).
    """

    _is_classifier = False
    _y_numeric = True

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 batch_norm=False, dropout=0.0, init=None, dtype=None):
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.init = init
        self.dtype = dtype

    def _checked_params(self):
        if self.loss not in REGRESSION_LOSSES:
            raise ValueError(f"The 'loss' parameter of MLPRegressor must be a str among "
                             f"{set(REGRESSION_LOSSES)!r}. Got {self.loss!r} instead.")
        return super()._checked_params()

    def _encode_targets(self, y, first_pass, incremental, classes, dtype):
        y = np.ascontiguousarray(y, dtype=dtype)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson "
                             "regression.")
        return (y.reshape(-1, 1) if y.ndim == 1 else y), {}

    def _output_activation(self):
        # scikit-learn's name of the inverse link: identity, or exp for Poisson's log link
        return "exp" if self.loss == "poisson" else "identity"

    def _fastnn_loss(self):
        return REGRESSION_LOSSES[self.loss]

    def _gradient_scale(self):
        # fastnn's MSE is mean((ŷ − y)²) over n·k values; scikit-learn's gradient is that of
        # (1/2n) Σ (ŷ − y)², i.e. fastnn's × k/2. fastnn's Poisson loss is the mean over n·k
        # values, scikit-learn's the sum over outputs of the mean over samples: × 1/k.
        return 2.0 / self.n_outputs_ if self.loss == "squared_error" else 1.0 / self.n_outputs_

    def _data_scale(self):
        # scikit-learn reports half the mean squared error over samples and outputs
        return 0.5 if self.loss == "squared_error" else float(self.n_outputs_)

    def _partial_fit(self, X, y, sample_weight=None):
        """Update the model with one epoch over (X, y); returns self. ``sample_weight`` as in
        ``fit``."""
        return self._fit(X, y, sample_weight, incremental=True)

    partial_fit = _available_if(_stochastic_only, _partial_fit)

    def predict(self, X):
        """Predicted targets: shape (n,) for one output, (n, ``n_outputs_``) otherwise."""
        dtype = self._output_dtype(X)
        return self._predict(self._forward(X)).astype(dtype, copy=False)

    def _predict(self, X):
        """``predict`` of a validated X, in the compute dtype."""
        out = self.net_.predict(X)
        if self.loss == "poisson":
            np.exp(out, out=out)  # the inverse of the log link
        return out.ravel() if self.n_outputs_ == 1 else out

    def _validation_score(self, X, y, sample_weight):
        """R² on the validated held-out rows, weighted by ``sample_weight`` if given."""
        return _r2_score(y.reshape(len(y), -1).astype(np.float64),
                         np.asarray(self._predict(X), dtype=np.float64), sample_weight)


#: MLPRegressor's losses: scikit-learn's name to fastnn's loss (``fastnn.losses``).
REGRESSION_LOSSES = {"squared_error": "mse", "poisson": "poisson"}


def _r2_score(y, pred, sample_weight=None):
    """R² averaged over outputs, scikit-learn's ``r2_score`` (constant targets: 1 if exact, else 0),
    with its weights: 1 − Σ wᵢ (yᵢ − ŷᵢ)² / Σ wᵢ (yᵢ − ȳ_w)², ȳ_w the weighted mean."""
    y = y.reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    if not np.isfinite(pred).all():
        return np.nan
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    residual = (w[:, None] * (y - pred) ** 2).sum(axis=0)
    total = (w[:, None] * (y - np.average(y, axis=0, weights=w)) ** 2).sum(axis=0)
    scores = np.ones(y.shape[1])
    nonzero = total != 0
    scores[nonzero] = 1 - residual[nonzero] / total[nonzero]
    scores[~nonzero & (residual != 0)] = 0.0
    return float(scores.mean())


def _shuffle_seed(seed):
    """Seed of ``fastnn.fit``'s shuffling (fit numbers the epochs over the model's whole life,
    passed as ``initial_epoch``, so each epoch of warm starts and partial_fit gets its own order)."""
    return int(np.random.SeedSequence(seed, spawn_key=(SHUFFLE,)).generate_state(1, np.uint64)[0] % 2**63)


def _same(a, b):
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except (TypeError, ValueError):
        return False
