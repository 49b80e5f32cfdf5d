"""What ``import fastnn`` and the command line load: no heavy or optional package until used.

Each check runs a fresh interpreter (this process has imported everything already) with
``-X importtime``, whose report on stderr names every module the process imported.
benchmarks/import_time.py measures the time; these tests only check what is loaded.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MNIST_SMALL

ROOT = Path(__file__).resolve().parents[1]

#: Packages ``import fastnn`` must not load: they load on first use.
HEAVY = ("sklearn", "scipy", "pandas", "joblib", "tqdm", "matplotlib", "torch", "onnx",
         "onnxruntime", "dask", "distributed", "tensorboard", "tensorboardX")


def imported_packages(*args):
    """Top-level packages a fresh ``python -X importtime ARGS`` imports, and its stdout."""
    path = [str(ROOT), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    packages = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            packages.add(name.split(".")[0])
    assert "fastnn" in packages or "numpy" in packages, proc.stderr[-3000:]
    return packages, proc.stdout


def test_import_fastnn_loads_no_heavy_package():
    packages, _ = imported_packages("-c", "import fastnn")
    assert "fastnn" in packages
    assert sorted(packages & set(HEAVY)) == []


def test_lazy_names_resolve_and_are_listed():
    code = """if True:
        import sys
        import fastnn
        assert set(fastnn.__all__) <= set(dir(fastnn))
        assert "sklearn" not in sys.modules
        from fastnn.estimator import MLPClassifier
        assert fastnn.MLPClassifier is MLPClassifier
        assert fastnn.fit is fastnn.training.fit
        for name in fastnn.__all__:
            getattr(fastnn, name)
        try:
            fastnn.no_such_name
        except AttributeError as e:
            assert "no_such_name" in str(e)
        else:
            raise AssertionError("fastnn.no_such_name resolved")
        print("ok")
    """
    _, out = imported_packages("-c", code)
    assert out.strip() == "ok"


def test_callbacks_load_no_tensorboard_code():
    code = """if True:
        import sys
        import fastnn.callbacks
        assert "fastnn.tensorboard" not in sys.modules
        from fastnn.callbacks import TensorBoard
        assert TensorBoard is fastnn.TensorBoard and "fastnn.tensorboard" in sys.modules
        print("ok")
    """
    packages, out = imported_packages("-c", code)
    assert out.strip() == "ok"
    # The class loads without its writer: tensorboard comes with the first run it logs.
    assert sorted(packages & set(HEAVY)) == []


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["--version"]])
def test_cli_help_loads_no_heavy_package(args):
    packages, out = imported_packages("-m", "fastnn", *args)
    assert "fastnn" in out
    assert sorted(packages & set(HEAVY)) == []


def test_cli_train_loads_no_scikit_learn(tmp_path):
    if not (MNIST_SMALL / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"mnist-small not found at {MNIST_SMALL} (set FASTNN_TEST_DATA)")
    packages, out = imported_packages(
        "-m", "fastnn", "train", "--data-dir", str(MNIST_SMALL), "--epochs", "1",
        "--hidden", "16", "--threads", "1", "--save", str(tmp_path / "model.npz"))
    assert "test accuracy" in out
    # The training loop's progress bar is tqdm's; nothing else heavy, and no scikit-learn.
    assert sorted(packages & set(HEAVY)) in ([], ["tqdm"])
