"""fastnn's estimators on Dask: a real LocalCluster of 2 worker processes on 127.0.0.1.

- dask-ml's ``Incremental`` trains ``MLPClassifier``/``MLPRegressor`` block by block over a
  dask array through ``partial_fit`` (each block's step is a task on a worker; the estimator
  travels between tasks pickled);
- scikit-learn's ``GridSearchCV`` under ``joblib.parallel_backend("dask")`` runs its fits on
  the workers;
- dask-ml's ``ParallelPostFit`` predicts on a dask array of 1M rows that only the workers
  hold, each worker's memory bounded (``WORKER_MEMORY``) far below what the whole array and
  its predictions need at once.

Needs the ``fastnn[dask]`` extra (dask[array], distributed, dask-ml) and scikit-learn.
"""
import warnings

import numpy as np
import pytest

WHY = "the Dask extra is not installed (pip install 'fastnn[dask]'); CI installs it"
da = pytest.importorskip("dask.array", reason=WHY)
distributed = pytest.importorskip("dask.distributed", reason=WHY)
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers", reason=WHY)
pytest.importorskip("sklearn", reason=WHY)
import joblib  # noqa: E402
from sklearn.datasets import make_blobs, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from fastnn import MLPClassifier, MLPRegressor  # noqa: E402

#: Each worker's memory limit: dask spills at 60% of it, pauses at 80%, restarts at 95%.
WORKER_MEMORY = "1GiB"


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None,
                                       memory_limit=WORKER_MEMORY)
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(6000, n_features=10, centers=4, cluster_std=3.0, random_state=0)
    return X.astype(np.float32), y


def _ran_on_workers(client, tasks):
    """The workers that ran ``tasks`` (a task stream's records), as a set of addresses."""
    return {record["worker"] for record in tasks}


def test_incremental_trains_block_by_block_on_workers(client, blobs):
    X, y = blobs
    X_train, y_train = da.from_array(X[:5000], chunks=500), da.from_array(y[:5000], chunks=500)
    model = dask_ml_wrappers.Incremental(
        MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0),
        scoring="accuracy", shuffle_blocks=True, random_state=0)
    with distributed.get_task_stream(client) as stream:
        for _ in range(3):  # 3 passes over the 10 blocks
            model.partial_fit(X_train, y_train, classes=np.unique(y))
    fitted = model.estimator_
    assert fitted.t_ == 3 * 5000 and fitted.n_iter_ == 1
    # dask-ml's graph: task ("fit-<token>", i) runs partial_fit on block i
    steps = [record["key"] for record in stream.data
             if isinstance(record["key"], tuple) and str(record["key"][0]).startswith("fit-")
             and record["key"][1] >= 0]
    assert len(steps) == 30
    assert _ran_on_workers(client, stream.data) <= set(client.scheduler_info()["workers"])
    accuracy = model.score(da.from_array(X[5000:], chunks=500), da.from_array(y[5000:], chunks=500))
    assert accuracy > 0.9
    assert (fitted.predict(X[5000:]) == y[5000:]).mean() == pytest.approx(accuracy)


def test_incremental_regressor(client):
    X, y = make_regression(4000, 8, noise=1.0, random_state=0)
    X, y = X.astype(np.float32), y / 100
    model = dask_ml_wrappers.Incremental(
        MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0),
        scoring="r2")
    for _ in range(10):
        model.partial_fit(da.from_array(X[:3000], chunks=600), da.from_array(y[:3000], chunks=600))
    # predictions computed block by block on the workers; R² here (dask-ml's r2 scorer
    # fails on the unknown chunk sizes of map_blocks output with this dask version)
    pred = model.predict(da.from_array(X[3000:], chunks=500)).compute()
    assert pred.shape == (1000,)
    assert r2_score(y[3000:], pred) > 0.95
    assert model.estimator_.score(X[3000:], y[3000:]) == pytest.approx(r2_score(y[3000:], pred))


def test_grid_search_with_dask_joblib_backend(client, blobs):
    X, y = blobs
    grid = {"alpha": [1e-4, 1.0], "hidden_layer_sizes": [(8,), (32,)]}
    search = GridSearchCV(MLPClassifier(max_iter=30, learning_rate_init=0.01, random_state=0),
                          grid, cv=3, n_jobs=-1)
    with distributed.get_task_stream(client) as stream, joblib.parallel_backend("dask"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X[:3000], y[:3000])
    # the 4 candidates x 3 folds ran as tasks of the cluster (joblib batches them), on both
    # workers
    assert len(stream.data) >= 2
    assert len(_ran_on_workers(client, stream.data)) == 2
    assert search.best_score_ > 0.9
    assert search.score(X[3000:], y[3000:]) > 0.9
    assert set(search.cv_results_["param_alpha"]) == {1e-4, 1.0}


def test_parallel_post_fit_predicts_a_million_rows_on_bounded_workers(client, blobs):
    """Fit in memory, predict on the cluster: a 1M x 10 dask array generated on the workers
    in 20 chunks, predicted chunk by chunk (ParallelPostFit's map_blocks)."""
    X, y = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, learning_rate_init=0.01,
                            random_state=0).fit(X, y)
    model = dask_ml_wrappers.ParallelPostFit(estimator=clf)
    limits = {w["memory_limit"] for w in client.scheduler_info()["workers"].values()}
    assert limits == {2**30}
    rows = 1_000_000
    big = (da.random.default_rng(0).standard_normal((rows, 10), chunks=(50_000, 10))
           .astype(np.float32) * 6)
    with distributed.get_task_stream(client) as stream:
        labels = model.predict(big)
        proba = model.predict_proba(big)
        counts = da.bincount(labels, minlength=4).compute()
        proba_sums = proba.sum(axis=1).compute()
    assert counts.sum() == rows and (counts > 0).all()
    np.testing.assert_allclose(proba_sums, 1.0, rtol=1e-5)
    assert len(_ran_on_workers(client, stream.data)) == 2
    first = big[:50_000].compute()
    np.testing.assert_array_equal(labels[:50_000].compute(), clf.predict(first))
