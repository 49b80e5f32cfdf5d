"""What a newcomer meets on the command line, second pass (issue 30), through subprocesses."""
import os
import stat

import pytest

import fastnn
from conftest import MNIST_SMALL
from test_cli_first_use import fastnn as run


@pytest.fixture(scope="module")
def api_model(mnist_small, tmp_path_factory):
    """A model saved from the Python API: no dataset, folder or fingerprint in its metadata."""
    Xtr, ytr = mnist_small[:2]
    net = fastnn.mlp([784, 16, 10], rng=0)
    fastnn.fit(net, Xtr[:2000], ytr[:2000], optimizer=fastnn.Adam(net.parameters()), epochs=1,
               rng=0)
    path = tmp_path_factory.mktemp("api") / "mnist.npz"
    fastnn.save(path, net)
    return path


# 4. evaluate without local data --------------------------------------------------------

def test_evaluate_without_data_is_two_lines_and_no_download(api_model, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run("evaluate", api_model, env={"HOME": str(home), "XDG_CACHE_HOME": ""})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0] == f"fastnn evaluate: error: mnist not found in {home}/.cache/fastnn/mnist"
    assert "--data-dir FOLDER" in lines[1] and "--download" in lines[1]
    assert "data_dir=" not in result.stderr and "downloading" not in result.stderr
    assert list(home.iterdir()) == []  # no empty ~/.cache/fastnn/mnist left behind


def test_evaluate_failed_download_leaves_no_empty_cache(api_model, tmp_path):
    # an unreachable proxy: every mirror fails at once, as on a machine without network
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CACHE_HOME": "", "http_proxy": "http://127.0.0.1:9",
           "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    result = run("evaluate", api_model, "--download", "-q", env=env)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].endswith("and the download failed") and "--data-dir FOLDER" in lines[1]
    assert list(home.iterdir()) == []


def test_evaluate_with_data_dir_works(api_model):
    result = run("evaluate", api_model, "--data-dir", MNIST_SMALL)
    assert result.returncode == 0, result.stderr
    assert "mnist test split, 2000 images" in result.stdout
    assert "true\\pred   0" in result.stdout and "\n        9 " in result.stdout


# 8. class names in the confusion matrix --------------------------------------------------

def test_confusion_matrix_names_fashion_mnist_classes(api_model):
    # mnist-small's files in the Fashion-MNIST layout stand in for Fashion-MNIST here
    result = run("evaluate", api_model, "--dataset", "fashion-mnist", "--data-dir", MNIST_SMALL)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    header = next(i for i, line in enumerate(rows) if line.startswith("true\\pred"))
    assert [row.split()[0:2] for row in rows[header + 1:header + 3]] == [
        ["0", "T-shirt/top"], ["1", "Trouser"]]
    assert rows[header + 10].startswith("9 Ankle boot")
    widths = {len(row) for row in rows[header:header + 11]}
    assert len(widths) == 1  # the columns line up under the header


# 6. mistyped options --------------------------------------------------------------------

@pytest.mark.parametrize("argv, unknown, suggestion", [
    (["train", "--hiden", "64"], "--hiden 64", "--hidden"),
    (["train", "--hiden=64"], "--hiden=64", "--hidden"),
    (["evaluate", "m.npz", "--datadir", "x"], "--datadir x", "--data-dir"),
    (["export", "m.npz", "m.onnx", "--quite"], "--quite", "--quiet")], ids=str)
def test_mistyped_option_names_the_subcommand_help_and_the_closest_option(argv, unknown,
                                                                          suggestion):
    result = run(*argv)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"fastnn {argv[0]}: error: unrecognized arguments: {unknown} (did you mean {suggestion}?)",
        f"Run 'fastnn {argv[0]} --help' for the options."]


def test_unknown_option_without_a_close_one_gets_no_suggestion():
    result = run("train", "--zzzz")
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["fastnn train: error: unrecognized arguments: --zzzz",
                                          "Run 'fastnn train --help' for the options."]


@pytest.mark.parametrize("hidden", ["64,,32", "64,", ",64"])
def test_hidden_with_an_empty_width_is_refused(hidden):
    result = run("train", "--hidden", hidden)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "fastnn train: error: argument --hidden: expected comma-separated integers such as "
        f"256,128, got {hidden!r} (an empty item)")


def test_hidden_widths_still_parse():
    from fastnn.cli import _int_list

    assert _int_list("64, 32") == (64, 32) and _int_list(" 8 ,4") == (8, 4)


# 5. export's output file ------------------------------------------------------------------

def test_export_follows_the_umask_like_model_files(api_model, tmp_path):
    pytest.importorskip("onnx", reason="the onnx extra is a test dependency")
    out = tmp_path / "m.onnx"
    result = run("export", api_model, out, umask=0o022)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def _read_only_folder(tmp_path):
    """A folder this process cannot write in: 0555, or for root a read-only mount."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
        return folder
    if os.access("/proc/sys", os.W_OK):
        pytest.fail("running as root with no read-only folder to write into")
    return "/proc/sys"


def test_export_into_a_read_only_folder_fails_first_naming_the_path(tmp_path):
    out = os.path.join(_read_only_folder(tmp_path), "x.onnx")
    # the model does not exist: the output path is checked before any work
    result = run("export", tmp_path / "missing.npz", out)
    assert result.returncode == 1
    assert result.stderr.startswith(f"fastnn export: error: {out}: ")
    assert ".tmp" not in result.stderr and len(result.stderr.splitlines()) == 1
