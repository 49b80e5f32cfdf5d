"""The ``fastnn`` command line: train, evaluate and use MLPs on MNIST-layout data::

    fastnn train                                   # a good MNIST MLP with the defaults
    fastnn train --dataset fashion-mnist --save fashion.npz --plot curves.png
    fastnn evaluate fashion.npz                    # accuracy, loss, confusion matrix
    fastnn predict fashion.npz t10k-images-idx3-ubyte.gz --out labels.txt
    fastnn diagnose --activation sigmoid --hidden 30,30,30 --out diag.csv
    fastnn experiment vanishing-gradients

Exit status: 0 on success, 1 when a command fails (missing data, unreadable model file,
diverged training...), 2 for invalid options; errors are one line on stderr (set
FASTNN_DEBUG=1 for the traceback).
"""
import argparse
import functools
import os
import sys
import textwrap
import time

import numpy as np

#: Defaults of ``fastnn train`` (measured on mnist-small and Fashion-MNIST, see README).
#: Batch norm, batch 128 and Adam at 2e-3 (instead of none, 64 and 1e-3) were chosen on
#: Fashion-MNIST validation accuracy: benchmarks/README.md, "The `fastnn train` recipe".
DEFAULTS = {"dataset": "mnist", "hidden": (512, 256), "activation": "relu", "dropout": 0.3,
            "batch_norm": True, "adam_lr": 2e-3,
            "optimizer": "adam", "schedule": "cosine", "epochs": 30, "batch_size": 128,
            "val_split": 0.1, "patience": 5, "monitor": "val_accuracy", "seed": 0,
            "preprocess": "scale", "augment": "none", "max_shift": 2}


class CommandError(Exception):
    """A user-facing failure: printed as one line (and ``hint``, a second), exit status 1."""

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


# -- argument parsing -------------------------------------------------------------------

def _int_list(text):
    items = text.replace(" ", "").split(",")
    if "" in items and text.strip():  # "64,,32" or "64," is a typo, not the widths 64,32
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,128, "
                                         f"got {text!r} (an empty item)")
    try:
        values = tuple(int(v) for v in items if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return values


def _int_at_least(minimum):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _float_in(low, high, low_open=False, high_open=True):
    """An argparse type: a number within the bounds (checked by ``check_number``)."""
    from fastnn._validation import check_number, describe_interval

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return check_number(value, "value", low, high, low_open, high_open)
        except ValueError:
            bounds = describe_interval(low, high, low_open, high_open)
            raise argparse.ArgumentTypeError(f"expected a number in {bounds}, got {text}") from None
    return parse


_positive_float = _float_in(0.0, None, low_open=True)
_nonneg_float = _float_in(0.0, None)
_fraction = _float_in(0.0, 1.0)


def _add_data_args(p, dataset_default=DEFAULTS["dataset"], download=True):
    """--dataset, --data-dir and --no-download (``download``: fetch missing files by default)
    or --download (not by default)."""
    from fastnn.datasets import DATA_DIR_ENV

    g = p.add_argument_group("data")
    g.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=dataset_default,
                   help=f"dataset by name (default: {dataset_default or 'the one the model was trained on'})")
    g.add_argument("--data-dir", metavar="DIR",
                   help=f"folder with the four IDX files; otherwise ${DATA_DIR_ENV}, then "
                        "~/.cache/fastnn/<dataset> ($XDG_CACHE_HOME), then "
                        "/usr/share/datasets/fashion-mnist (Fashion-MNIST)"
                        + (", then a download" if download else ""))
    if download:
        g.add_argument("--no-download", action="store_true",
                       help="fail instead of downloading when the files are not found")
    else:
        g.add_argument("--download", action="store_true",
                       help="download the files when they are not found (default: fail)")


def _add_training_args(p, plot=True, batch_norm=DEFAULTS["batch_norm"]):
    from fastnn.datasets import Preprocessor
    from fastnn.initializers import INITIALIZERS
    from fastnn.layers import HIDDEN_ACTIVATIONS
    from fastnn.optimizers import OPTIMIZERS

    _add_data_args(p)
    g = p.add_argument_group("architecture")
    arch = g.add_mutually_exclusive_group()
    arch.add_argument("--hidden", type=_int_list, metavar="W1,W2,...",
                      help="hidden layer widths (default: %s)" % ",".join(map(str, DEFAULTS["hidden"])))
    arch.add_argument("--layers", type=_int_list, metavar="784,...,10",
                      help="all layer widths, input and output included")
    g.add_argument("--activation", choices=HIDDEN_ACTIVATIONS, default=DEFAULTS["activation"],
                   help=f"hidden activation (default: {DEFAULTS['activation']})")
    g.add_argument("--init", choices=sorted(INITIALIZERS), metavar="NAME",
                   help="weight initializer: " + ", ".join(sorted(INITIALIZERS)) +
                        " (default: He for the ReLU family and ELU, LeCun for SELU, Glorot "
                        "otherwise)")
    g.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=batch_norm,
                   help="batch normalization after each hidden Dense layer (default: "
                        f"{'on' if batch_norm else 'off'})")
    g.add_argument("--dropout", type=_fraction, default=DEFAULTS["dropout"], metavar="RATE",
                   help="inverted dropout rate after each hidden activation, in [0, 1); 0 for "
                        f"none (default: {DEFAULTS['dropout']})")
    g.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="parameter dtype (default: float32)")

    g = p.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=list(OPTIMIZERS), default=DEFAULTS["optimizer"],
                   help=f"(default: {DEFAULTS['optimizer']})")
    g.add_argument("--lr", type=_positive_float, metavar="LR",
                   help=f"learning rate (default: {DEFAULTS['adam_lr']:g} for adam, the "
                        "optimizer's otherwise: 1e-3 for adamw, 1e-2 for "
                        "sgd/momentum/nesterov/adagrad/rmsprop)")
    g.add_argument("--momentum", type=_fraction, help="momentum for sgd/momentum/nesterov")
    g.add_argument("--beta1", type=_fraction, help="Adam β1 (default: 0.9)")
    g.add_argument("--beta2", type=_fraction, help="Adam β2 (default: 0.999)")
    g.add_argument("--eps", type=_positive_float, help="denominator ε of adaptive optimizers")
    g.add_argument("--rho", type=_fraction, help="RMSProp decay ρ (default: 0.99)")
    g.add_argument("--weight-decay", type=_nonneg_float, metavar="WD",
                   help="weight decay on weights, not biases (decoupled for adamw)")
    g.add_argument("--clip-norm", type=_positive_float, metavar="MAX",
                   help="clip the global gradient L2 norm to MAX")
    g.add_argument("--clip-value", type=_positive_float, metavar="MAX",
                   help="clip each gradient entry to [-MAX, MAX]")

    g = p.add_argument_group("learning-rate schedule",
                             "α₀ is the optimizer's --lr; t counts epochs, or optimizer steps "
                             "where noted (see fastnn.schedules)")
    g.add_argument("--schedule", default=DEFAULTS["schedule"],
                   choices=("constant", "step", "exponential", "inverse_time", "cosine", "plateau"),
                   help="constant: α₀; step: α₀·γ^⌊t/step-size⌋; exponential: α₀·e^(−k t); "
                        "inverse_time: α₀·τ/max(t, τ) over steps; cosine: from α₀ down to "
                        "--min-lr over --t-max steps (default: all the epochs); plateau: × "
                        f"--factor when val_loss stalls (default: {DEFAULTS['schedule']})")
    g.add_argument("--step-size", type=_positive_int, help="step: epochs between decays")
    g.add_argument("--gamma", type=_float_in(0.0, 1.0, low_open=True, high_open=False),
                   help="step: decay factor γ (default: 0.1)")
    g.add_argument("--decay-k", type=_nonneg_float, metavar="K", help="exponential: rate k per epoch")
    g.add_argument("--tau", type=_positive_float, help="inverse_time: τ in optimizer steps")
    g.add_argument("--t-max", type=_positive_int, metavar="STEPS",
                   help="cosine: length in optimizer steps (default: epochs × steps per epoch)")
    g.add_argument("--warmup", type=_nonneg_int, metavar="STEPS",
                   help="cosine: linear warm-up steps (default: 0)")
    g.add_argument("--min-lr", type=_nonneg_float, help="cosine/plateau: lowest lr (default: 0)")
    g.add_argument("--factor", type=_float_in(0.0, 1.0, low_open=True),
                   help="plateau: lr multiplier (default: 0.1)")
    g.add_argument("--plateau-patience", type=_nonneg_int, metavar="EPOCHS",
                   help="plateau: epochs without improvement before reducing (default: 10)")

    g = p.add_argument_group("regularization")
    g.add_argument("--l2", type=_nonneg_float, default=0.0, help="L2 penalty λ on weights (default: 0)")
    g.add_argument("--l1", type=_nonneg_float, default=0.0, help="L1 penalty λ on weights (default: 0)")
    g.add_argument("--max-norm", type=_positive_float, help="max-norm constraint on each unit's weights")

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=DEFAULTS["epochs"],
                   help=f"maximum number of epochs (default: {DEFAULTS['epochs']})")
    g.add_argument("--batch-size", type=_positive_int, default=DEFAULTS["batch_size"],
                   help=f"(default: {DEFAULTS['batch_size']})")
    g.add_argument("--val-split", type=_fraction, default=DEFAULTS["val_split"], metavar="FRACTION",
                   help="fraction of the training images held out for validation, 0 for none "
                        f"(default: {DEFAULTS['val_split']})")
    g.add_argument("--patience", type=_nonneg_int, default=DEFAULTS["patience"],
                   help="early stopping: epochs without a better --monitor value before "
                        f"stopping, 0 to disable (default: {DEFAULTS['patience']})")
    g.add_argument("--monitor", choices=("val_loss", "val_accuracy"), default=DEFAULTS["monitor"],
                   help=f"metric early stopping watches (default: {DEFAULTS['monitor']})")
    g.add_argument("--restore-best", action=argparse.BooleanOptionalAction, default=True,
                   help="with early stopping, keep the weights of the best validation epoch "
                        "(default: on)")
    g.add_argument("--preprocess", choices=Preprocessor.METHODS,
                   default=DEFAULTS["preprocess"],
                   help="input preprocessing after scaling to [0, 1]: mean subtraction, "
                        "standardization, PCA or ZCA whitening (CS224n); statistics come from "
                        "the training split and are saved with the model (default: scale)")
    g.add_argument("--components", type=_positive_int, metavar="K",
                   help="with pca-whiten/zca-whiten: keep the K directions of largest variance "
                        "(default: all)")
    g.add_argument("--whiten-eps", type=float, default=Preprocessor.WHITEN_EPS, metavar="EPS",
                   help="with pca-whiten/zca-whiten: ε added to every covariance eigenvalue "
                        f"(default: {Preprocessor.WHITEN_EPS})")
    g.add_argument("--augment", choices=("none", "hflip", "shift", "hflip+shift"),
                   default=DEFAULTS["augment"],
                   help="training-time augmentation: hflip mirrors a random half of each batch "
                        "left-right, for Fashion-MNIST (garments keep their class when mirrored, "
                        "digits do not); shift translates each image by up to --max-shift "
                        "pixels each way; both need --preprocess scale (default: "
                        f"{DEFAULTS['augment']})")
    g.add_argument("--max-shift", type=_nonneg_int, default=DEFAULTS["max_shift"], metavar="PIXELS",
                   help=f"with --augment shift: the largest translation (default: {DEFAULTS['max_shift']})")
    g.add_argument("--seed", type=_nonneg_int, default=DEFAULTS["seed"],
                   help=f"seed of the initial weights, split and shuffling (default: {DEFAULTS['seed']})")
    g.add_argument("--threads", type=_positive_int,
                   help="threads for the kernels (default: all cores; use 1 on a machine busy "
                        "with other work, where waiting BLAS threads stall every product)")
    g.add_argument("--on-nonfinite", choices=("raise", "skip"), default="raise",
                   help="a NaN/inf loss or gradient: stop before the update, naming the step and "
                        "layer (raise), or leave that step out (skip) (default: raise)")

    g = p.add_argument_group("output")
    g.add_argument("--save", metavar="PATH",
                   help="write the trained model (.npz) to PATH, atomically (a file already "
                        "there is replaced only by a whole new one)")
    if plot:
        g.add_argument("--plot", metavar="PATH",
                       help='write learning curves (PNG) to PATH; needs pip install "fastnn[plot]"')
    g.add_argument("--log", metavar="PATH", help="write per-epoch metrics to PATH as JSON lines")
    _add_logdir(g)
    _add_verbosity(g)


def _add_logdir(g):
    g.add_argument("--logdir", metavar="DIR",
                   help="write TensorBoard event files to DIR: the curves, per-layer diagnostics "
                        "and histograms (view with 'tensorboard --logdir DIR'); needs pip "
                        'install "fastnn[tensorboard]"')


def _add_verbosity(g):
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or per-epoch lines; only results and errors")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="also describe the data, the network and the optimizer")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are the error and a pointer to --help, not the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' for the options.\n")

    def unrecognized(self, extras):
        """Exit on options this (sub)command does not know, suggesting the closest one."""
        import difflib

        message = f"unrecognized arguments: {' '.join(extras)}"
        # argparse keeps the option strings only in this private table; reading it here
        # keeps the suggestion in step with every option that is added
        known = [o for o in self._option_string_actions if o.startswith("--")]
        for extra in extras:
            option = extra.split("=", 1)[0]
            close = option.startswith("--") and difflib.get_close_matches(option, known, n=1, cutoff=0.75)
            if close:
                message += f" (did you mean {close[0]}?)"
                break
        self.error(message)


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps description and epilog paragraphs but keeps their line breaks and indented lines."""

    def _fill_text(self, text, width, indent):
        lines = []
        for line in text.splitlines():
            if line.startswith(" ") or not line:
                lines.append(indent + line)
            else:
                lines.extend(textwrap.wrap(line, width, initial_indent=indent,
                                           subsequent_indent=indent))
        return "\n".join(lines)


def build_parser():
    """The ``fastnn`` argument parser (subcommands train, evaluate, predict, diagnose, experiment,
    export)."""
    fmt = _HelpFormatter
    parser = _Parser(
        prog="fastnn", formatter_class=fmt,
        description="Train and use fully-connected networks on MNIST and Fashion-MNIST.",
        epilog="Run 'fastnn COMMAND --help' for the options of a command.")
    from fastnn import __version__
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.commands = sub.choices  # name -> subcommand parser, for main's usage errors

    p = sub.add_parser(
        "train", formatter_class=fmt, help="train an MLP and report its test accuracy",
        description="Train an MLP on MNIST or Fashion-MNIST, report test accuracy, optionally "
                    "save the model, learning curves and a JSON-lines log.",
        epilog="Defaults: 784-512-256-10 ReLU, He init, batch norm, dropout 0.3, Adam lr 2e-3 "
               "with cosine decay over the epochs, batch 128, up to 30 epochs, 10% of the "
               "training images held out for early stopping (patience 5 on validation accuracy) "
               "restoring the "
               "best weights.\n\nexamples:\n  fastnn train --data-dir ~/data/mnist --save mnist.npz\n"
               "  fastnn train --dataset fashion-mnist --hidden 256,128 --dropout 0.2 --plot curves.png\n"
               "  fastnn train --optimizer momentum --lr 0.05 --momentum 0.9 --schedule step "
               "--step-size 5 --gamma 0.5")
    _add_training_args(p)
    p.add_argument("--save-on-interrupt", action="store_true",
                   help="on Ctrl-C, save the model as it is after the last whole step to the "
                        "--save PATH (by default Ctrl-C saves nothing and leaves PATH as it "
                        "was); either way training stops after the step it is in, with exit "
                        "status 130 and one line saying where")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", formatter_class=fmt,
                       help="accuracy, loss and confusion matrix of a saved model",
                       description="Evaluate a saved model on a dataset split: accuracy, mean "
                                   "loss and the confusion matrix (rows: true class, columns: "
                                   "predicted class). By default the dataset and folder the model "
                                   "was trained on (stored in the model file); a folder holding "
                                   "other data than the model's training set is flagged.")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastnn train --save'")
    _add_data_args(p, dataset_default=None, download=False)
    p.add_argument("--split", choices=("test", "train"), default="test", help="(default: test)")
    p.add_argument("--threads", type=_positive_int, help="threads for the kernels (default: all cores)")
    _add_verbosity(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", formatter_class=fmt, help="class predictions for images",
                       description="Predict the class of each image of an IDX file (e.g. "
                                   "t10k-images-idx3-ubyte.gz) or a .npy array of shape (n, 28, 28) "
                                   "or (n, 784). Integer arrays are raw pixels (0-255); float "
                                   "arrays should be scaled to [0, 1] (floats up to 255 are read "
                                   "as raw pixels, with a warning; NaN, infinity and values "
                                   "outside 0-255 are refused). The model's preprocessing is "
                                   "applied.",
                       epilog="output: one label per line (stdout or --out FILE); with --out "
                              "FILE.npy an int64 array.\nWith --proba, the class probabilities "
                              "instead (comma-separated lines, or a float array).")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastnn train --save'")
    p.add_argument("input", metavar="INPUT", help="IDX image file (.gz or raw) or .npy array")
    p.add_argument("--out", metavar="PATH", help="write to PATH (.npy: binary array) instead of stdout")
    p.add_argument("--proba", action="store_true", help="output class probabilities")
    p.add_argument("--threads", type=_positive_int, help="threads for the kernels (default: all cores)")
    _add_verbosity(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("diagnose", formatter_class=fmt,
                       help="train while recording per-layer diagnostics",
                       description="Train like 'fastnn train' while a fastnn.diagnostics.Monitor "
                                   "records per-layer gradient norms (Nielsen's speed of "
                                   "learning), activation statistics, saturation and dead units; "
                                   "print the table and warnings.",
                       epilog="example:\n  fastnn diagnose --activation sigmoid --hidden 30,30,30 "
                              "--optimizer sgd --lr 0.1 --epochs 2 --out diag.csv")
    _add_training_args(p, plot=False, batch_norm=False)  # shows the plain network's troubles
    g = p.add_argument_group("diagnostics")
    g.add_argument("--interval", type=_positive_int, default=10,
                   help="record every N optimizer steps (default: 10)")
    g.add_argument("--out", metavar="PATH", help="write the diagnostics (.json or .csv by suffix)")
    g.add_argument("--plot", metavar="PATH", help="write a PNG of the diagnostics per layer")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("experiment", formatter_class=fmt, help="run a packaged experiment",
                       description="Run one of the experiments of fastnn.experiments "
                                   "(vanishing-gradients, activations, relu-variants, "
                                   "init-histograms) on the dataset, print its table and write "
                                   "its files.",
                       epilog="examples:\n  fastnn experiment relu-variants --dataset fashion-mnist "
                              "--threads 1\n  fastnn experiment activations --epochs 100 "
                              "--arms sigmoid --threads 1 --plot act.png")
    p.add_argument("name", metavar="NAME",
                   help="experiment name: vanishing-gradients, activations, relu-variants, "
                        "init-histograms")
    _add_data_args(p)
    p.add_argument("--seed", type=_nonneg_int, default=DEFAULTS["seed"],
                   help=f"(default: {DEFAULTS['seed']})")
    p.add_argument("--plot", metavar="PATH", help="write the experiment's figure (PNG)")
    p.add_argument("--out", metavar="PATH", help="write the experiment's results (JSON)")
    p.add_argument("--threads", type=_positive_int, help="threads for the kernels (default: all cores)")
    p.add_argument("--epochs", type=_positive_int,
                   help="length of the training runs (experiments that train: default theirs, "
                        "e.g. 500 full-batch epochs for vanishing-gradients, 4 for activations)")
    p.add_argument("--arms", type=_name_list, metavar="NAME,...",
                   help="run only the arms with one of these names (an activation such as "
                        "sigmoid, an init, or an arm's label)")
    _add_logdir(p)
    _add_verbosity(p)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("export", formatter_class=fmt, help="write a saved model as an ONNX graph",
                       description="Write a model file as an ONNX graph (fastnn.export.to_onnx): "
                                   "the evaluation-mode network with its stored preprocessing; "
                                   "input 'input', float32 pixels scaled to [0, 1]; outputs "
                                   "'logits', 'probabilities' and 'label'. Needs the onnx extra "
                                   "(pip install \"fastnn[onnx]\").",
                       epilog="example:\n  fastnn export fashion.npz fashion.onnx")
    p.add_argument("model", metavar="MODEL", help="model file written by 'fastnn train --save'")
    p.add_argument("out", metavar="OUT", help="the .onnx file to write")
    _add_verbosity(p)
    p.set_defaults(func=cmd_export)
    return parser


# -- helpers ----------------------------------------------------------------------------

class _Console:
    """Where the commands write: results to stdout, information and warnings to stderr."""

    def __init__(self, args):
        self.quiet = getattr(args, "quiet", False)
        self.verbose = getattr(args, "verbose", False) and not self.quiet

    def result(self, text):
        print(text, flush=True)

    def progress(self, text):
        if not self.quiet:
            print(text, flush=True)

    def note(self, text):
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def info(self, text):
        if self.verbose:
            print(text, file=sys.stderr, flush=True)

    def warn(self, text):
        print(f"warning: {text}", file=sys.stderr, flush=True)


def _check_outputs(args, *options):
    """Fail before any work when an output path (``--save`` ...) cannot be written, naming it as given."""
    import tempfile

    for option in options:
        path = getattr(args, option.lstrip("-").replace("-", "_").lower(), None)
        if not path:
            continue
        label = f"{option} {path}" if option.startswith("-") else str(path)  # positional: the path
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise CommandError(f"{label}: is a folder; give a file name")
        if not os.path.isdir(folder):
            what = "is not a folder" if os.path.exists(folder) else "does not exist"
            raise CommandError(f"{label}: the folder {os.path.dirname(path) or folder} {what}")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise CommandError(f"{label}: no permission to write in {os.path.dirname(path) or folder}")
        if os.path.exists(path) and not os.access(path, os.W_OK):
            raise CommandError(f"{label}: the file exists and is not writable")
        try:  # what access() cannot see: a read-only file system for root, a full disk
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as exc:
            raise CommandError(f"{label}: cannot write in {os.path.dirname(path) or folder}: "
                               f"{exc.strerror}") from None


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def _set_threads(args, console=None):
    threads = getattr(args, "threads", None)
    if threads:
        cores = _usable_cores()
        if threads > cores:
            # waiting threads on a busy core stall every product: 64 threads on 2 cores ran 400x slower
            message = f"--threads {threads} is more than the {cores} cores here; using {cores}"
            if console is not None:
                console.warn(message)
            else:
                print(f"warning: {message}", file=sys.stderr, flush=True)
            threads = cores
        from fastnn import set_num_threads
        set_num_threads(threads)


def _load_data(args, console, dataset=None, data_dir=None):
    """The dataset's four arrays, from --data-dir, else ``data_dir``, else the usual lookup;
    sets ``args.data_folder`` and ``args.data_fingerprint``."""
    from fastnn.datasets import (
        DATA_DIR_ENV,
        MNIST_FILES,
        DatasetNotFoundError,
        candidate_dirs,
        fingerprint,
        has_files,
        load_dataset,
        locate,
    )

    dataset = dataset or args.dataset
    download = args.download if "download" in vars(args) else not args.no_download
    folder = args.data_dir or data_dir
    start = time.perf_counter()
    if folder is None and not any(has_files(d) for d in candidate_dirs(dataset)):
        # two lines in the command line's words, not the Python API's long message
        looked = ", ".join(candidate_dirs(dataset))
        files = ", ".join(f"{stem}[.gz]" for split in ("train", "test") for stem in MNIST_FILES[split])
        ways = f"give --data-dir FOLDER holding {files}, set {DATA_DIR_ENV}=FOLDER"
        if not download:
            fetch = "add --download" if "download" in vars(args) else "drop --no-download"
            raise CommandError(f"{dataset} not found in {looked}", f"{ways}, or {fetch}")
        try:
            folder = locate(dataset, download_missing=True, progress=not console.quiet,
                            log=console.note)
        except DatasetNotFoundError:
            raise CommandError(f"{dataset} not found in {looked}, and the download failed",
                               f"{ways.replace(', set', ' or set')}") from None
    folder = locate(dataset, folder, download_missing=False)
    data = load_dataset(dataset, folder)
    args.data_folder = os.path.abspath(folder)
    args.data_fingerprint = fingerprint(data[1], data[2], data[3])
    console.info(f"{dataset}: {len(data[0])} training and {len(data[2])} test images from "
                 f"{folder} ({time.perf_counter() - start:.1f}s to load)")
    return data


def _architecture(args, n_features, n_classes):
    if args.layers:
        sizes = list(args.layers)
        if len(sizes) < 2:
            raise CommandError(f"--layers needs at least an input and an output width, got {sizes}")
        if sizes[0] != n_features or sizes[-1] != n_classes:
            raise CommandError(f"--layers must start with {n_features} (input pixels) and end with "
                               f"{n_classes} (classes), got {','.join(map(str, sizes))}")
        return sizes
    hidden = args.hidden if args.hidden is not None else DEFAULTS["hidden"]
    return [n_features, *hidden, n_classes]


def _physical_memory():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every platform
        return None


def _format_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def _check_memory(args, sizes):
    """Refuse, before allocating, a network whose training state cannot fit in memory."""
    n_params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    # weights + gradients, plus Adam's two moments (one velocity for momentum, none for SGD)
    copies = 2 + {"adam": 2, "adamw": 2, "sgd": 0}.get(args.optimizer, 1)
    need = n_params * copies * np.dtype(args.dtype).itemsize
    available = _physical_memory()
    if available and need > available:
        option = "--layers" if args.layers else "--hidden"
        widths = sizes if args.layers else sizes[1:-1]
        raise CommandError(f"{option} {','.join(map(str, widths))}: {n_params:,} parameters need "
                           f"{_format_bytes(need)} to train ({args.dtype}, {args.optimizer}); "
                           f"this machine has {_format_bytes(available)}")


def _build_net(args, sizes, seed):
    from fastnn._seeding import INITIAL_WEIGHTS, stream
    from fastnn.network import mlp

    return mlp(sizes, activation=args.activation, init=args.init, dtype=args.dtype,
               rng=stream(seed, INITIAL_WEIGHTS),
               batch_norm=args.batch_norm, dropout=args.dropout, l2=args.l2, l1=args.l1,
               max_norm=args.max_norm)


def _build_optimizer(args, net):
    from fastnn.optimizers import make_optimizer

    betas = None
    if args.beta1 is not None or args.beta2 is not None:
        betas = (0.9 if args.beta1 is None else args.beta1, 0.999 if args.beta2 is None else args.beta2)
    lr = args.lr
    if lr is None and args.optimizer == "adam":
        lr = DEFAULTS["adam_lr"]
    options = {"lr": lr, "momentum": args.momentum, "betas": betas, "eps": args.eps,
               "rho": args.rho, "weight_decay": args.weight_decay, "clip_norm": args.clip_norm,
               "clip_value": args.clip_value}
    return make_optimizer(args.optimizer, net.parameters(), **options)


#: Command-line options of each schedule: option dest -> keyword of ``fastnn.schedules.get``.
SCHEDULE_OPTIONS = {
    "constant": {},
    "step": {"step_size": "step_size", "gamma": "gamma"},
    "exponential": {"decay_k": "k"},
    "inverse_time": {"tau": "tau"},
    "cosine": {"t_max": "t_max", "warmup": "warmup", "min_lr": "min_lr"},
    "plateau": {"factor": "factor", "plateau_patience": "patience", "min_lr": "min_lr"},
}
_REQUIRED = {"step": "step_size", "exponential": "decay_k", "inverse_time": "tau"}


def _build_schedule(args, optimizer, steps_per_epoch):
    from fastnn import schedules

    own = SCHEDULE_OPTIONS[args.schedule]
    every = {dest for options in SCHEDULE_OPTIONS.values() for dest in options}
    stray = sorted("--" + dest.replace("_", "-") for dest in every - set(own)
                   if getattr(args, dest) is not None)
    if stray:
        raise CommandError(f"{', '.join(stray)} does not apply to --schedule {args.schedule}")
    required = _REQUIRED.get(args.schedule)
    if required and getattr(args, required) is None:
        raise CommandError(f"--schedule {args.schedule} needs --{required.replace('_', '-')}")
    if args.schedule == "constant":
        return None
    options = {keyword: getattr(args, dest) for dest, keyword in own.items()}
    if args.schedule == "cosine" and options["t_max"] is None:
        options["t_max"] = args.epochs * steps_per_epoch
    return schedules.get(args.schedule, optimizer, **options)


def _augmentation(args):
    """The ``augment`` callable of ``fit`` for ``--augment`` (None for none)."""
    from fastnn import datasets

    if args.augment == "none":
        return None
    if args.preprocess != "scale":
        raise CommandError(f"--augment {args.augment} needs --preprocess scale (the rows must "
                           f"still be images), got --preprocess {args.preprocess}")
    steps = {"hflip": datasets.hflip,
             "shift": functools.partial(datasets.shift, max_shift=args.max_shift)}
    chosen = [steps[name] for name in args.augment.split("+")]

    def augment(X, rng):
        for step in chosen:
            X = step(X, rng)
        return X
    return augment


def _describe_net(net):
    config = net.get_config()
    widths = [str(net.in_features)]
    kinds = []
    for spec in config["layers"]:
        if spec["class"] == "Dense":
            widths.append(str(spec["config"]["out_features"]))
        elif spec["class"] == "Activation":
            kinds.append(spec["config"]["name"])
        else:
            kinds.append(spec["class"])
    unique = list(dict.fromkeys(kinds))
    n_params = sum(p.data.size for p in net.parameters())
    return f"{'-'.join(widths)} {'/'.join(unique) or 'linear'} ({n_params:,} parameters)"


def _train(args, console, monitor_factory=None):
    """Shared body of train and diagnose: returns (net, history, preprocessor, test metrics, monitor)."""
    from fastnn._seeding import VALIDATION_SPLIT, stream
    from fastnn.callbacks import EarlyStopping, MetricsLogger
    from fastnn.datasets import Preprocessor, train_val_split
    from fastnn.training import fit

    _set_threads(args, console)
    if args.logdir:
        from fastnn.tensorboard import require_tensorboard
        require_tensorboard()
    if getattr(args, "plot", None) and monitor_factory is None:
        from fastnn.plotting import require_matplotlib
        require_matplotlib()
    X_train, y_train, X_test, y_test = _load_data(args, console)
    seed = args.seed
    X_val = y_val = None
    if args.val_split:
        X_train, y_train, X_val, y_val = train_val_split(
            X_train, y_train, args.val_split, stream(seed, VALIDATION_SPLIT))
    pre = Preprocessor(args.preprocess, args.components, args.whiten_eps).fit(X_train)
    X_train = pre.transform(X_train)
    X_test = pre.transform(X_test)
    if X_val is not None:
        X_val = pre.transform(X_val)
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    sizes = _architecture(args, X_train.shape[1], n_classes)
    _check_memory(args, sizes)
    net = _build_net(args, sizes, seed)
    optimizer = _build_optimizer(args, net)
    schedule = _build_schedule(args, optimizer, -(-len(X_train) // args.batch_size))
    console.info(f"network: {_describe_net(net)}")
    console.info(f"optimizer: {optimizer!r}" + (f", schedule: {schedule!r}" if schedule else ""))
    console.info(f"training on {len(X_train)} images, validating on "
                 f"{0 if X_val is None else len(X_val)}, testing on {len(X_test)}")
    callbacks = []
    if X_val is None and args.patience:
        console.info("no validation split: early stopping is off")
    if X_val is not None and args.patience:
        callbacks.append(EarlyStopping(args.monitor, patience=args.patience,
                                       restore_best_weights=args.restore_best))
    if args.log:
        callbacks.append(MetricsLogger(args.log))
    monitor = monitor_factory(net) if monitor_factory else None
    if args.logdir:  # per-layer curves and histograms need a Monitor (interval 10 for train)
        from fastnn.diagnostics import Monitor
        from fastnn.tensorboard import TensorBoard
        monitor = monitor or Monitor(net)
        callbacks.append(TensorBoard(args.logdir, diagnostics=monitor))
    augment = _augmentation(args)
    start = time.perf_counter()
    try:
        history = fit(net, X_train, y_train, optimizer=optimizer, epochs=args.epochs,
                      batch_size=args.batch_size,
                      validation_data=None if X_val is None else (X_val, y_val),
                      schedule=schedule, callbacks=callbacks, diagnostics=monitor, rng=seed,
                      verbose=0 if console.quiet else 1, log=console.progress,
                      on_nonfinite=args.on_nonfinite, augment=augment)
    except KeyboardInterrupt as stop:  # fit's TrainingInterrupted: the last whole step
        stop.trained = (net, optimizer, schedule, pre)
        raise
    elapsed = time.perf_counter() - start
    if history.stopped_epoch is not None:
        best = f"; restored the weights of epoch {history.best_epoch}" if history.best_epoch else ""
        console.progress(f"early stopping after epoch {history.stopped_epoch}{best}")
    test = net.evaluate(X_test, y_test)
    console.result(f"test accuracy {100 * test['accuracy']:.2f}%  loss {test['loss']:.4f}  "
                   f"({len(X_test)} {args.dataset} test images; {len(history)} "
                   f"epoch{'' if len(history) == 1 else 's'} in {elapsed:.1f}s)")
    return net, history, optimizer, schedule, pre, test, monitor


# -- commands ---------------------------------------------------------------------------

def cmd_train(args):
    """``fastnn train``: train an MLP as ``args`` say, report its test accuracy; the exit status."""
    from fastnn import io

    console = _Console(args)
    _check_outputs(args, "--save", "--plot", "--log")
    if args.save_on_interrupt and not args.save:
        raise CommandError("--save-on-interrupt needs --save PATH")
    try:
        net, history, optimizer, schedule, pre, test, _ = _train(args, console)
    except KeyboardInterrupt as stop:
        # Ctrl-C: fit finished the step it was in (never a half update). One line on stderr,
        # exit status 130; the model is saved only when asked, and io.save writes through a
        # temporary file renamed over PATH, so PATH holds the old file or the new one.
        trained = getattr(stop, "trained", None)
        where = str(stop) if trained is not None else "interrupted before training"
        saved = "model not saved" if args.log else "nothing saved"
        if trained is not None and args.save_on_interrupt:
            net, optimizer, schedule, pre = trained
            history = stop.history
            metadata = {"dataset": args.dataset, "data_dir": args.data_folder,
                        "data_fingerprint": args.data_fingerprint, "epochs": stop.epochs_done,
                        "training_steps": stop.global_steps, "seed": args.seed,
                        "history": history.to_dict(), "command": args.argv}
            io.save(args.save, net, optimizer=optimizer, schedule=schedule,
                    preprocessing=pre.state_dict(), metadata=metadata)
            saved = f"saved the model at that step to {args.save}"
        if args.log:  # MetricsLogger writes whole lines and opens the file at epoch 1's end
            epochs = stop.epochs_done if trained is not None else 0
            saved += (f"; {epochs} epoch{'s' if epochs != 1 else ''} of metrics in {args.log}"
                      if epochs else f"; no epoch finished, {args.log} not written")
        print(f"fastnn train: {where}; {saved}", file=sys.stderr, flush=True)
        return 130
    if args.save:
        metadata = {"dataset": args.dataset, "data_dir": args.data_folder,
                    "data_fingerprint": args.data_fingerprint, "epochs": len(history), "seed": args.seed,
                    "test_accuracy": test["accuracy"], "test_loss": test["loss"],
                    "history": history.to_dict(), "command": args.argv}
        io.save(args.save, net, optimizer=optimizer, schedule=schedule,
                preprocessing=pre.state_dict(), metadata=metadata)
        console.progress(f"saved the model to {args.save}")
    if args.plot:
        from fastnn.plotting import plot_history
        plot_history(history, args.plot, title=f"{args.dataset}: {_describe_net(net)}")
        console.progress(f"wrote learning curves to {args.plot}")
    if args.log:
        console.info(f"wrote per-epoch metrics to {args.log}")
    return 0


def _load_model(path):
    from fastnn import io

    try:
        return io.load(path)
    except FileNotFoundError:
        raise CommandError(f"model file not found: {path}") from None


def cmd_evaluate(args):
    """``fastnn evaluate MODEL``: accuracy, loss and confusion matrix of a saved model; the exit status."""
    from fastnn.datasets import DATASETS, Preprocessor, has_files

    console = _Console(args)
    _set_threads(args, console)
    model = _load_model(args.model)
    trained_on = model.metadata.get("dataset")
    dataset = args.dataset or trained_on or "mnist"
    stored_dir = model.metadata.get("data_dir")
    # the folder the model was trained from, when it still holds the files
    default_dir = stored_dir if dataset == trained_on and stored_dir and has_files(stored_dir) else None
    X_train, y_train, X_test, y_test = _load_data(args, console, dataset, data_dir=default_dir)
    stored = model.metadata.get("data_fingerprint")
    if stored and args.data_fingerprint == stored and dataset != trained_on:
        raise CommandError(f"{args.data_folder} holds the {trained_on} data {args.model} was "
                           f"trained on, not {dataset}; drop --dataset or give its folder")
    if stored and args.data_fingerprint != stored and dataset == trained_on:
        console.warn(f"the {dataset} files in {args.data_folder} differ from those {args.model} "
                     f"was trained on ({stored_dir})")
    X, y = (X_test, y_test) if args.split == "test" else (X_train, y_train)
    X = Preprocessor.from_state(model.preprocessing).transform(X)
    net = model.net
    if X.shape[1] != net.in_features:
        raise CommandError(f"{args.model} expects {net.in_features} inputs, {dataset} images "
                           f"have {X.shape[1]}")
    metrics = net.evaluate(X, y)
    pred = net.predict(X)
    k = net.out_features
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    console.result(f"{args.model}: {_describe_net(net)}")
    console.result(f"{dataset} {args.split} split, {len(y)} images: accuracy "
                   f"{100 * metrics['accuracy']:.2f}%  loss {metrics['loss']:.4f}")
    console.result("confusion matrix (rows: true class, columns: predicted class):")
    names = DATASETS[dataset]["classes"]
    named = len(names) == k and names != [str(i) for i in range(k)]
    label = max(9, max(len(f"{i} {n}") for i, n in enumerate(names))) if named else 9
    width = max(4, len(str(confusion.max())) + 1)
    header = "true\\pred"
    console.result(f"{header:<{label}}" + "".join(f"{j:>{width}}" for j in range(k)))
    for i in range(k):
        row = f"{i} {names[i]}" if named else f"{i:>9}"
        console.result(f"{row:<{label}}" + "".join(f"{v:>{width}}" for v in confusion[i]))
    return 0


def _read_images(path, n_features, console):
    from fastnn.datasets import flatten_and_scale, read_idx

    if not os.path.exists(path):
        raise CommandError(f"input file not found: {path}")
    if path.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CommandError(f"{path}: cannot read as a .npy array ({exc})") from None
    else:
        X = read_idx(path)
    if X.dtype.kind not in "biuf":
        raise CommandError(f"{path}: expected numbers, got dtype {X.dtype}")
    if X.ndim >= 2 and int(np.prod(X.shape[1:])) == n_features:
        X = X.reshape(len(X), n_features)
    elif X.size == n_features:
        X = X.reshape(1, n_features)
    else:
        raise CommandError(f"{path}: shape {X.shape} does not hold images of {n_features} pixels")
    if X.dtype.kind == "f":
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise CommandError(f"{path}: image {int(np.argmax(bad))} (0-based) holds NaN or "
                               f"infinity; {int(bad.sum())} of {len(X)} images are not finite")
    low, high = X.min(initial=0), X.max(initial=0)
    if low < 0 or high > 255:
        row = int(np.argmax(((X < 0) | (X > 255)).any(axis=1)))
        raise CommandError(f"{path}: image {row} (0-based) has values outside 0-255 (from {low:g} to "
                           f"{high:g}); expected raw pixels 0-255 or floats in [0, 1]")
    if X.dtype.kind in "biu":  # raw pixels, scaled exactly as training data was
        return flatten_and_scale(X)
    if high > 1:  # floats beyond [0, 1] but within 0-255 are raw pixels: scale them as training did
        console.warn(f"{path}: float values up to {high:g} exceed 1; read as raw pixels 0-255 "
                     "and divided by 255, as in training")
        return flatten_and_scale(X)
    return X.astype(np.float32, copy=False)


def cmd_predict(args):
    """``fastnn predict MODEL INPUT``: class predictions for IDX or ``.npy`` images; the exit status."""
    from fastnn.datasets import Preprocessor

    _check_outputs(args, "--out")
    _set_threads(args)
    model = _load_model(args.model)
    net = model.net
    pre = Preprocessor.from_state(model.preprocessing)
    X = _read_images(args.input, pre.n_features_in or net.in_features, _Console(args))
    X = pre.transform(X.astype(net.dtype, copy=False))
    result = net.predict_proba(X) if args.proba else net.predict(X).astype(np.int64)
    if args.out and args.out.endswith(".npy"):
        np.save(args.out, result)
        return 0
    if args.proba:
        lines = [",".join(f"{p:.6g}" for p in row) for row in result]
    else:
        lines = [str(int(v)) for v in result]
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0


def cmd_diagnose(args):
    """``fastnn diagnose``: train with a ``Monitor``, print its table and warnings; the exit status."""
    from fastnn import diagnostics
    from fastnn.plotting import require_matplotlib

    console = _Console(args)
    if args.plot:
        require_matplotlib()
    if args.out and not args.out.endswith((".json", ".csv")):
        raise CommandError(f"--out must end in .json or .csv, got {args.out}")
    _check_outputs(args, "--out", "--plot", "--log", "--save")
    _, _, _, _, _, _, monitor = _train(
        args, console, monitor_factory=lambda net: diagnostics.Monitor(net, interval=args.interval))
    console.result(monitor.table())
    for message in monitor.warnings():
        console.warn(message)
    if args.out:
        (monitor.to_json if args.out.endswith(".json") else monitor.to_csv)(args.out)
        console.progress(f"wrote diagnostics to {args.out}")
    if args.plot:
        monitor.plot(args.plot)
        console.progress(f"wrote the diagnostics plot to {args.plot}")
    return 0


def _experiment_options(args, experiment):
    """``epochs=`` and ``arms=`` for ``experiment`` from --epochs/--arms, refused where it has none."""
    import inspect

    params = inspect.signature(experiment).parameters
    kwargs = {}
    if args.epochs is not None:
        if "epochs" not in params:
            raise CommandError(f"experiment {args.name} does not train: --epochs does not apply")
        kwargs["epochs"] = args.epochs
    if args.logdir:
        if "logdir" not in params:
            raise CommandError(f"experiment {args.name} records no training: --logdir does not apply")
        from fastnn.tensorboard import require_tensorboard
        require_tensorboard()
        kwargs["logdir"] = args.logdir
    if args.arms:
        key = "arms" if "arms" in params else "inits" if "inits" in params else None
        if key is None:
            raise CommandError(f"experiment {args.name} has no arms to choose from")
        default = params[key].default
        # An arm is a tuple of names (label, activation, init, ...) or a single name.
        chosen = tuple(arm for arm in default
                       if set(arm if isinstance(arm, tuple) else (arm,)) & set(args.arms))
        if not chosen:
            names = sorted({str(v) for arm in default
                            for v in (arm if isinstance(arm, tuple) else (arm,))
                            if isinstance(v, str)})
            raise CommandError(f"--arms {','.join(args.arms)} matches no arm of {args.name}; "
                               f"names: {', '.join(names)}")
        kwargs[key] = chosen
    return kwargs


def _name_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def cmd_experiment(args):
    """``fastnn experiment NAME``: run one of ``fastnn.experiments.EXPERIMENTS``; returns the exit status."""
    from fastnn.experiments import EXPERIMENTS

    console = _Console(args)
    if args.name not in EXPERIMENTS:
        raise CommandError(f"unknown experiment {args.name!r}; choose from {', '.join(EXPERIMENTS)}")
    if args.plot:
        from fastnn.plotting import require_matplotlib
        require_matplotlib()
    experiment = EXPERIMENTS[args.name]
    kwargs = _experiment_options(args, experiment)
    _set_threads(args)
    data = _load_data(args, console)
    start = time.perf_counter()
    result = experiment(data, rng=args.seed, quiet=console.quiet, **kwargs)
    console.progress(f"{args.name}: {time.perf_counter() - start:.0f} s")
    console.result(result.table())
    if args.out:
        result.to_json(args.out)
        console.progress(f"wrote results to {args.out}")
    if args.plot:
        result.plot(args.plot)
        console.progress(f"wrote the figure to {args.plot}")
    return 0


def cmd_export(args):
    """``fastnn export MODEL OUT.onnx``: write a saved model as an ONNX graph; returns the exit status."""
    from fastnn.export import OPSET, to_onnx

    console = _Console(args)
    _check_outputs(args, "OUT")
    model = _load_model(args.model)
    proto = to_onnx(model, args.out)
    console.progress(f"wrote {args.out}: ONNX opset {OPSET}, {len(proto.graph.node)} nodes, "
                     f"outputs {', '.join(o.name for o in proto.graph.output)}")
    return 0


# -- entry point ------------------------------------------------------------------------

def main(argv=None):
    """Run the ``fastnn`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args, extras = parser.parse_known_args(argv)
        if extras:  # the subcommand's help and options, not the top level's
            parser.commands[args.command].unrecognized(extras)
    except SystemExit as exc:  # --help, --version, usage errors (argparse printed them)
        return exc.code if isinstance(exc.code, int) else 2
    args.argv = argv
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("FASTNN_DEBUG"):
            raise
        from fastnn.training import TrainingDivergedError
        if not isinstance(exc, (CommandError, OSError, ValueError, TypeError, ImportError,
                                TrainingDivergedError)):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            message = f"{exc.filename}: {exc.strerror}"
        print(f"fastnn {args.command}: error: {message}", file=sys.stderr)
        if getattr(exc, "hint", None):
            print(f"  {exc.hint}", file=sys.stderr)
        return 1
