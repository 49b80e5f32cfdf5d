"""Print fastnn's speed against NumPy, PyTorch, onnxruntime and JAX as Markdown tables.

    python benchmarks/report.py                        # every section
    python benchmarks/report.py --quick                # 2 rounds, short timings (a smoke run)
    python benchmarks/report.py --only inference,train --threads 1

Sections: "inference" (``predict`` of a 784-256-128-10 ReLU MLP: fastnn, NumPy, torch,
onnxruntime, JAX), "train" (training steps: fastnn, NumPy, torch, JAX), "elementwise"
(activation passes: fastnn, NumPy, torch, and the memory-traffic floor), "dense" (dense
forward: fastnn, NumPy, torch): each library in a process of its own, rounds interleaved
(runner.py); a cell is the median over rounds of each worker's best (``--stat``) time per
call. Then, in this process, "floor" (fastnn's step over the same products alone, on the
backend its steps train with here, and for Adam one pass of its update: "floor x") and
"epoch" (a Fashion-MNIST epoch, samples/s). Ratios are peer time / fastnn time: > 1 means fastnn is faster.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import runner as r  # noqa: E402
import workloads as w  # noqa: E402

SECTIONS = ("inference", "train", "elementwise", "dense", "floor", "epoch")
ALIASES = {"steps": ("train", "floor")}  # the former report's table of steps and floors
PEERS = {"inference": ("fastnn", "numpy", "torch", "onnxruntime", "jax"),
         "train": ("fastnn", "numpy", "torch", "jax"),
         "elementwise": ("fastnn", "numpy", "torch"), "dense": ("fastnn", "numpy", "torch")}
DEFAULT_KERNELS = ("relu", "sigmoid", "tanh", "elu")
CHECK_ROWS = 512


# -- formatting ---------------------------------------------------------------------------
def markdown(headers, rows):
    print("| " + " | ".join(headers) + " |")
    print("|" + " --- |" * len(headers))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def us(seconds):
    value = seconds * 1e6
    return f"{value:.0f}" if value >= 1000 else f"{value:.1f}"


class Cells:
    """Table cells from one section's times: µs medians (with the range over rounds when
    asked) and peer / fastnn ratios of the medians."""

    def __init__(self, times, spread):
        self.times, self.spread = times, spread

    def median(self, lib, case):
        found = r.median_of(self.times, lib, case)
        return None if found is None else found[0]

    def time(self, lib, case):
        found = r.median_of(self.times, lib, case)
        if found is None:
            return "-"
        median, low, high = found
        return f"{us(median)} ({us(low)}–{us(high)})" if self.spread else us(median)

    def ratio(self, lib, case, mine_case=None, mine_lib="fastnn"):
        other, mine = self.median(lib, case), self.median(mine_lib, mine_case or case)
        return "-" if other is None or mine is None else f"{other / mine:.2f}x"


def _ints(text):
    return [int(x) for x in text.split(",") if x]


# -- per-process sections -----------------------------------------------------------------
def _libraries(run, args, section):
    wanted = [lib for lib in PEERS[section] if lib in args.libs]
    missing = [f"{lib} {run.libraries[lib]['missing']}" for lib in wanted
               if "missing" in run.libraries.get(lib, {})]
    if missing:
        print(f"\n({section}: {'; '.join(missing)}: left out)", end="")
    return run.available(wanted)


def inference(run, args):
    libs = _libraries(run, args, "inference")
    print(f"\n## Inference: `predict` (class labels), {'-'.join(map(str, w.MLP))} ReLU MLP, float32; µs\n")
    with tempfile.TemporaryDirectory() as folder:
        onnx_model = os.path.join(folder, "mlp.onnx")
        if "onnxruntime" in libs:
            try:  # fastnn's exporter writes the graph, in a fastnn process
                run.run("fastnn", [{"kind": "export_onnx", "path": onnx_model}])
            except r.WorkerError as error:
                print(f"onnxruntime left out: the ONNX export failed: {str(error).splitlines()[-1]}\n")
                libs.remove("onnxruntime")
        _check_labels(run, libs, args.batches, onnx_model)
        rows = [{lib: [{"kind": "predict", "batch": n}] for lib in libs} for n in args.batches]
        cells = Cells(run.rounds("inference", rows, args.rounds, onnx_model=onnx_model), args.spread)
    peers = [lib for lib in libs if lib != "fastnn"]
    markdown(["batch"] + libs + [f"vs {lib}" for lib in peers],
             [[str(n)] + [cells.time(lib, case) for lib in libs] + [cells.ratio(lib, case) for lib in peers]
              for n in args.batches for case in [{"kind": "predict", "batch": n}]])


def _check_labels(run, libs, batches, onnx_model):
    """Every library's labels on CHECK_ROWS rows, predicted in chunks of each batch size,
    against the float64 reference; exit before any timing if one differs."""
    rows = max(CHECK_ROWS, *batches)
    reference, ambiguous = w.reference_labels(w.mlp_weights(), w.batch(w.MLP, rows, seed=1)[0])
    cases = [{"kind": "labels", "batch": n, "rows": rows, "seed": 1} for n in batches]
    failures, labels = [], {}
    for lib in libs:
        for entry in run.run(lib, cases, onnx_model=onnx_model)["results"]:
            n = entry["case"]["batch"]
            labels[lib, n] = np.asarray(entry["labels"])
            wrong = w.label_mismatches(labels[lib, n], reference, ambiguous)
            if wrong.size:
                failures.append(f"{lib} at batch {n}: {wrong.size} of {rows} rows differ from the "
                                f"float64 reference (rows {wrong[:8].tolist()})")
    if failures:
        sys.exit("label check failed, nothing timed:\n  " + "\n  ".join(failures))
    differ = max((int(np.sum(labels[lib, n] != labels["fastnn", n])) for lib, n in labels
                  if ("fastnn", n) in labels), default=0)
    print(f"Labels checked before timing: {', '.join(libs)} agree with the float64 reference on "
          f"{rows} rows at batch {', '.join(map(str, batches))} ({int(ambiguous.sum())} rows with "
          f"near-equal top logits exempt; at most {differ} differ from fastnn's).\n")


def train(run, args):
    libs = _libraries(run, args, "train")
    print("\n## Training step: ReLU MLP + softmax cross-entropy, float32; µs\n")
    print("sgd: 784-256-128-10, plain SGD (JAX: the whole step under one `jax.jit`, parameters "
          "donated); adam: the same with Adam; bn: 784-[512]x4-10 with batch norm, SGD.\n")
    rows = [{lib: [{"kind": "step", "row": row, "batch": n}] for lib in libs} for row, n in args.train_rows]
    cells = Cells(run.rounds("train", rows, args.rounds), args.spread)
    peers = [lib for lib in libs if lib != "fastnn"]
    markdown(["step"] + libs + [f"vs {lib}" for lib in peers],
             [[f"{row} batch {n}"] + [cells.time(lib, case) for lib in libs]
              + [cells.ratio(lib, case) for lib in peers]
              for row, n in args.train_rows for case in [{"kind": "step", "row": row, "batch": n}]])


def _elementwise_cases(kernels, shape):
    for kernel in kernels:
        for direction in [w.COMBINED[kernel]] if kernel in w.COMBINED else ["forward", "backward"]:
            yield kernel, direction, {"kind": "elementwise", "kernel": kernel, "direction": direction,
                                      "shape": list(shape)}


def elementwise(run, args):
    libs = _libraries(run, args, "elementwise")
    print("\n## Elementwise passes, float32, outputs preallocated; µs\n")
    print("traffic: the fastest NumPy pass moving as many bytes (a copy for one input, an add for "
          "two), single-threaded: the memory floor of one core.\n")
    rows = []
    for shape in args.shapes:
        cases = [case for _, _, case in _elementwise_cases(args.kernels, shape)]
        per_lib = {lib: list(cases) for lib in libs}
        if "numpy" in per_lib:
            passes = {w.traffic_passes(k, d) for k, d, _ in _elementwise_cases(args.kernels, shape)}
            per_lib["numpy"] += [{"kind": "traffic", "passes": list(p), "shape": list(shape)}
                                 for p in sorted(passes)]
        rows.append(per_lib)
    cells = Cells(run.rounds("elementwise", rows, args.rounds), args.spread)
    peers = [lib for lib in libs if lib != "fastnn"]
    traffic = "numpy" in libs
    table = []
    for shape in args.shapes:
        for kernel, direction, case in _elementwise_cases(args.kernels, shape):
            floor = {"kind": "traffic", "passes": list(w.traffic_passes(kernel, direction)),
                     "shape": list(shape)}
            table.append([f"{kernel} {direction}", "x".join(map(str, shape))]
                         + [cells.time(lib, case) for lib in libs]
                         + ([cells.time("numpy", floor)] if traffic else [])
                         + [cells.ratio(lib, case) for lib in peers])
    markdown(["kernel", "shape"] + libs + (["traffic"] if traffic else []) + [f"vs {lib}" for lib in peers],
             table)


def dense(run, args):
    libs = _libraries(run, args, "dense")
    print("\n## Dense forward (X W + b into a preallocated output), float32; µs\n")
    cases = [{"kind": "dense", "shape": list(shape)} for shape in w.DENSE_SHAPES]
    cells = Cells(run.rounds("dense", [{lib: cases for lib in libs}], args.rounds), args.spread)
    peers = [lib for lib in libs if lib != "fastnn"]
    markdown(["batch x in x out"] + libs + [f"vs {lib}" for lib in peers],
             [["x".join(map(str, case["shape"]))] + [cells.time(lib, case) for lib in libs]
              + [cells.ratio(lib, case) for lib in peers] for case in cases])


# -- sections in this process (fastnn alone, or NumPy and fastnn back to back) ---------------
def floor(args):
    """fastnn's steps over their product floor: the step's products in its order, alone, on
    the backend its steps train with here; for Adam also one pass of its update over every
    parameter."""
    import fastnn

    fastnn.set_num_threads(args.threads)
    print("\n## Steps over their floor (fastnn alone, in this process); µs\n")
    rows = [("sgd", 32), ("sgd", 128), ("sgd", 512), ("adam", 32), ("adam", 128), ("adam", 512), ("bn", 128)]
    table = []
    for row, n in rows:
        sizes, optimizer, lr, batch_norm = w.STEP_ROWS[row]
        mine, gemms = w.best_times([
            w.fastnn_step(sizes, n, optimizer=optimizer, lr=lr, batch_norm=batch_norm),
            w.adam_floor_step(sizes, n) if optimizer == "adam" else w.gemm_floor_step(sizes, n)],
            args.repeats, min_seconds=args.min_time)
        table.append([f"{row} batch {n}", us(mine), us(gemms), f"{mine / gemms:.2f}x"])
    markdown(["step", "fastnn", "floor", "floor x"], table)


def epoch(args):
    """One epoch of Fashion-MNIST's 60,000 training images at batch 64, in samples/s: the same
    work (784-256-128-10 ReLU, plain SGD) in NumPy and fastnn, and ``fastnn train``'s defaults
    (Adam, cosine schedule, dropout 0.2, 10% held out and evaluated after the epoch)."""
    import fastnn
    from fastnn import cli, datasets
    from fastnn.training import fit

    fastnn.set_num_threads(args.threads)
    threadpoolctl = w.optional("threadpoolctl")
    if threadpoolctl is not None:  # NumPy's OpenBLAS too (fastnn's is set already)
        threadpoolctl.threadpool_limits(args.threads, user_api="blas")  # stays until the process ends
    print("\n## One epoch of Fashion-MNIST (60,000 images, batch 64), in this process; samples/s\n")
    try:
        X, y, _, _ = datasets.load_dataset("fashion-mnist", download_missing=False, progress=False)
    except datasets.DatasetNotFoundError as exc:
        print(f"skipped: {str(exc).splitlines()[0]}")
        return
    n = 64
    starts = range(0, len(X) - n + 1, n)
    numpy_mlp = w.NumpyMLP(w.MLP, n)
    net = fastnn.mlp(w.MLP, rng=0)
    sgd = fastnn.SGD(net.parameters(), lr=0.01)

    def numpy_epoch():
        for i in starts:
            numpy_mlp.step(X[i:i + n], y[i:i + n])

    def fastnn_epoch():
        for i in starts:
            net.train_step(X[i:i + n], y[i:i + n], sgd)

    cli_args = cli.build_parser().parse_args(["train", "--dataset", "fashion-mnist", "--epochs", "1"])
    X_train, y_train, X_val, y_val = datasets.train_val_split(X, y, cli_args.val_split, 0)

    def cli_epoch():
        model = cli._build_net(cli_args, cli._architecture(cli_args, X.shape[1], 10), cli_args.seed)
        optimizer = cli._build_optimizer(cli_args, model)
        schedule = cli._build_schedule(cli_args, optimizer, -(-len(X_train) // cli_args.batch_size))
        start = time.perf_counter()
        fit(model, X_train, y_train, optimizer=optimizer, epochs=1, batch_size=cli_args.batch_size,
            validation_data=(X_val, y_val), schedule=schedule, rng=cli_args.seed)
        return time.perf_counter() - start

    repeats = max(2, args.repeats // 2)
    same_numpy, same_fastnn = w.best_times([numpy_epoch, fastnn_epoch], repeats=repeats, min_seconds=0)
    cli_seconds = min(cli_epoch() for _ in range(repeats))
    images = len(starts) * n
    markdown(["epoch", "samples/s"], [
        ["same work, NumPy", f"{images / same_numpy:,.0f}"],
        ["same work, fastnn `train_step`",
         f"{images / same_fastnn:,.0f} ({same_numpy / same_fastnn:.2f}x NumPy)"],
        ["`fastnn train` defaults", f"{len(X_train) / cli_seconds:,.0f} (Adam, dropout 0.2, "
                                    f"{len(X_val)} validation images evaluated)"]])


# -- the report ---------------------------------------------------------------------------
def header(run, args, info):
    print("# fastnn benchmark report\n")
    cores = ", ".join(f"{info[k]} {k.lower()}" for k in ("Core(s) per socket", "Socket(s)",
                                                        "Thread(s) per core") if k in info)
    print(f"- machine: {info['cpu']}, {info['cpus']} CPUs ({info['available_cpus']} available"
          f"{'; ' + cores if cores else ''}); caches: {info['caches'] or 'unknown'}")
    print(f"- {info['system']}, Python {info['python']}, {info['date']}, load average at start "
          f"{' / '.join(f'{x:.2f}' for x in info['load'])}")
    if info["load"][0] >= 0.5:
        print(f"- **warning**: load average {info['load'][0]:.2f} at the start: other processes are "
              "running, and libraries whose thread pools spin (fastnn, NumPy, torch) slow down "
              "most when one takes a core they use")
    env = ", ".join(f"{k}={v}" for k, v in info["environment"].items()) or "none set"
    print(f"- threads: {args.threads} per library (runner.py says how each takes it); the "
          f"environment's thread-related variables before that: {env}")
    libraries = []
    for lib, found in run.libraries.items():
        if "missing" in found:
            libraries.append(f"{lib}: {found['missing']}")
            continue
        details = {k: v for k, v in found["versions"].items() if k != "version" and v}
        extra = "; ".join([f"{k} {v}" for k, v in details.items()]
                          + [f"threads {', '.join(f'{k} {v}' for k, v in found['threads'].items())}"])
        libraries.append(f"{lib} {found['versions']['version']} ({extra})")
    print("- libraries: " + ", ".join(libraries))
    print(f"- timing: each worker warms up {args.warmup} s, then times {args.repeats} blocks of at least "
          f"{args.min_time} s and keeps their {args.stat} per call; a cell is the median over "
          f"{args.rounds} interleaved rounds{' (range over rounds in brackets)' if args.spread else ''}")


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections out of {', '.join(SECTIONS)} "
                             "(\"steps\" = train,floor); default: all")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 3 blocks of >= 0.02 s after 0.05 s of warm-up: a smoke run")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads for every library (default: os.cpu_count(), here %(default)s)")
    parser.add_argument("--libs", default=",".join(r.LIBRARIES),
                        help="comma-separated libraries to compare (default: %(default)s)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5; --quick 2)")
    parser.add_argument("--repeats", type=int, help="timed blocks per worker (default 7; --quick 3)")
    parser.add_argument("--min-time", type=float, help="seconds per block at least (default 0.05)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up calls (default 0.2)")
    parser.add_argument("--stat", choices=["min", "median"], default="min",
                        help="what a worker keeps of its blocks (default: min)")
    parser.add_argument("--batches", type=_ints, default=[1, 8, 32, 128, 512],
                        help="inference batch sizes (default: 1,8,32,128,512)")
    parser.add_argument("--train-batches", type=_ints, default=[32, 128, 512],
                        help="batch sizes of the plain-SGD training step (default: 32,128,512)")
    parser.add_argument("--train-rows",
                        help="training steps as ROW:BATCH, ROW one of sgd, adam, bn (e.g. "
                             "sgd:32,adam:128,bn:128); replaces --train-batches")
    parser.add_argument("--shapes", default="512x1024,128x256",
                        help="elementwise shapes (default: %(default)s)")
    parser.add_argument("--kernels", default=",".join(DEFAULT_KERNELS),
                        help=f"elementwise passes: activations ({', '.join(w.NUMPY_FORWARD)}), "
                             f"{', '.join(w.COMBINED)}, or all (default: %(default)s)")
    parser.add_argument("--spread", action="store_true", help="also print each cell's range over rounds")
    parser.add_argument("--json", help="also write every measurement, machine and library to this file")
    args = parser.parse_args(argv)

    sections = []
    for name in args.only.split(","):
        for section in ALIASES.get(name, (name,)):
            if section not in SECTIONS:
                parser.error(f"unknown section {section!r}; choose from {', '.join(SECTIONS)} or steps")
            if section not in sections:
                sections.append(section)
    args.sections = [s for s in SECTIONS if s in sections]
    args.libs = args.libs.split(",")
    unknown = set(args.libs) - set(r.LIBRARIES)
    if unknown or "fastnn" not in args.libs:
        parser.error(f"--libs takes fastnn and any of {', '.join(r.LIBRARIES[1:])}; got {args.libs}")
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 5)
    args.repeats = args.repeats or (3 if quick else 7)
    args.min_time = args.min_time if args.min_time is not None else (0.02 if quick else 0.05)
    args.warmup = args.warmup if args.warmup is not None else (0.05 if quick else 0.2)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.train_rows:
        args.train_rows = [(row, int(n)) for row, _, n in (item.partition(":") for item in
                                                            args.train_rows.split(","))]
        if any(row not in w.STEP_ROWS for row, _ in args.train_rows):
            parser.error(f"--train-rows: rows are {', '.join(w.STEP_ROWS)}")
    else:
        args.train_rows = [("sgd", n) for n in args.train_batches]
    args.shapes = [tuple(int(x) for x in shape.split("x")) for shape in args.shapes.split(",")]
    kernels = list(w.NUMPY_FORWARD) + list(w.COMBINED)
    args.kernels = kernels if args.kernels == "all" else args.kernels.split(",")
    if set(args.kernels) - set(kernels):
        parser.error(f"--kernels: choose from {', '.join(kernels)} or all")
    return args


def main(argv=None):
    args = parse(argv)
    info = r.machine()
    run = r.Runner(args.threads, args.repeats, args.min_time, args.warmup, args.stat)
    needed = [lib for lib in r.LIBRARIES if lib in args.libs
              and any(lib in PEERS.get(section, ("fastnn",)) for section in args.sections)]
    run.probe(needed)
    header(run, args, info)
    for section in args.sections:
        if section in PEERS:
            globals()[section](run, args)
        else:
            globals()[section](args)
    print(f"\nLoad average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        import json

        with open(args.json, "w") as f:
            json.dump({"machine": info, "libraries": run.libraries, "arguments": vars(args),
                       "measurements": run.raw}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
