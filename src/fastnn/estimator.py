"""A scikit-learn-style classifier around ``fastnn.mlp`` and ``fastnn.training.fit``.

``MLPClassifier`` follows the estimator conventions (constructor arguments stored unchanged
as attributes, ``get_params``/``set_params``, fitted attributes ending in ``_``), so
``sklearn.base.clone``, pipelines and grid searches accept it; scikit-learn itself is not
needed to use it.
"""
import inspect

import numpy as np

from fastnn._seeding import INITIAL_WEIGHTS, stream
from fastnn._validation import check_array


class MLPClassifier:
    """Multi-layer perceptron classifier trained with mini-batches (``fastnn.training.fit``).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Widths of the hidden layers.
    activation : str, default "relu"
        Hidden activation (``fastnn.layers.ACTIVATIONS``).
    optimizer : str, default "adam"
        ``fastnn.optimizers.OPTIMIZERS`` name.
    learning_rate : float or None, default None
        The optimizer's learning rate (None: its default, 1e-3 for Adam).
    batch_size : int, default 64
    epochs : int, default 20
        Maximum number of passes over the training data.
    alpha : float, default 0.0
        L2 penalty coefficient on the weights (``mlp(l2=alpha)``).
    dropout : float, default 0.0
    batch_norm : bool, default False
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data and stop when its loss has
        not improved for ``patience`` epochs, restoring the best weights.
    validation_fraction : float, default 0.1
    patience : int, default 5
    init : str or None, default None
        Weight initializer (None: the one suited to ``activation``).
    dtype : "float32" or "float64", default "float32"
    random_state : None or int, default None
        Seed of the initial weights, the validation split and the shuffling.
    verbose : int, default 0
        Passed to ``fit``: 1 shows a progress bar and per-epoch lines, 2 the lines only.

    Attributes
    ----------
    classes_ : ndarray
        The sorted distinct labels seen by ``fit`` (any type ``numpy.unique`` sorts).
    net_ : fastnn.Sequential
    history_ : fastnn.training.History
    n_features_in_ : int
    loss_curve_ : list of float
        Training loss per epoch.
    """

    _estimator_type = "classifier"

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", optimizer="adam",
                 learning_rate=None, batch_size=64, epochs=20, alpha=0.0, dropout=0.0,
                 batch_norm=False, early_stopping=False, validation_fraction=0.1, patience=5,
                 init=None, dtype="float32", random_state=None, verbose=0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.alpha = alpha
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # -- estimator protocol -------------------------------------------------------------
    @classmethod
    def _get_param_names(cls):
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    def get_params(self, deep=True):
        """Constructor arguments as a dict (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor arguments; returns self. Unknown names raise ValueError."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for MLPClassifier; "
                                 f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                            if not _same(v, defaults.get(k)))
        return f"MLPClassifier({changed})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags())

    # -- fitting and prediction ---------------------------------------------------------
    def fit(self, X, y):
        """Train a new network on (X, y); labels may be of any sortable type. Returns self."""
        from fastnn.callbacks import EarlyStopping
        from fastnn.network import mlp
        from fastnn.optimizers import make_optimizer
        from fastnn.training import fit

        X = check_array(X, "X", np.dtype(self.dtype))
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be 1-D with one label per row of X ({len(X)}), got shape {y.shape}")
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y needs at least two classes, got {len(self.classes_)}")
        self.n_features_in_ = X.shape[1]
        hidden = (self.hidden_layer_sizes,) if np.isscalar(self.hidden_layer_sizes) \
            else tuple(self.hidden_layer_sizes)
        seed = self.random_state
        init_rng = None if seed is None else stream(seed, INITIAL_WEIGHTS)
        extras = {k: v for k, v in (("l2", self.alpha), ("dropout", self.dropout),
                                    ("batch_norm", self.batch_norm)) if v}
        self.net_ = mlp([X.shape[1], *hidden, len(self.classes_)], activation=self.activation,
                        init=self.init, rng=init_rng, dtype=self.dtype, **extras)
        optimizer = make_optimizer(self.optimizer, self.net_.parameters(), lr=self.learning_rate)
        callbacks = []
        if self.early_stopping:
            callbacks.append(EarlyStopping("val_loss", patience=self.patience,
                                           restore_best_weights=True))
        self.history_ = fit(self.net_, X, y_index, optimizer=optimizer, epochs=self.epochs,
                            batch_size=self.batch_size,
                            validation_split=self.validation_fraction if self.early_stopping else 0.0,
                            callbacks=callbacks, rng=seed, verbose=self.verbose)
        self.loss_curve_ = self.history_["loss"]
        return self

    def _check_fitted(self):
        if not hasattr(self, "net_"):
            raise ValueError("this MLPClassifier is not fitted yet: call fit(X, y) first")

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        self._check_fitted()
        return self.net_.predict_proba(X)

    def predict(self, X):
        """Predicted labels (elements of ``classes_``)."""
        self._check_fitted()
        return self.classes_[self.net_.predict(X)]

    def score(self, X, y):
        """Mean accuracy of ``predict(X)`` against ``y``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


def _same(a, b):
    try:
        return bool(a == b) if not isinstance(a, np.ndarray) else False
    except (TypeError, ValueError):
        return False
