"""Print fastnn's speed as ratios against NumPy and torch, measured side by side in one run.

    python benchmarks/report.py            # float32, the issue's targets
    python benchmarks/report.py --quick    # fewer repeats

Ratios > 1 mean fastnn is faster. "floor x" is fastnn's step time as a multiple of the same
GEMMs run alone through fastnn's BLAS (for Adam, plus one pass of its update kernel);
"traffic" is the fastest NumPy pass moving as many bytes as the kernel (the memory-bandwidth
floor). The implementations in a row are timed round-robin, so a slow spell of a shared
machine hits them alike.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fastnn  # noqa: E402
import workloads as w  # noqa: E402
from fastnn.layers import ACTIVATIONS, Activation  # noqa: E402
from fastnn_c import losses as _losses  # noqa: E402

MLP = [784, 256, 128, 10]
DEEP = [784, 512, 512, 512, 512, 10]


def ratio(other, mine):
    return "-" if other is None else f"{other / mine:5.2f}x"


def us(seconds):
    return "-" if seconds is None else f"{seconds * 1e6:9.1f}"


def steps(repeats):
    print("\n== training step 784-256-128-10, ReLU + softmax CE (float32); times in µs ==")
    print(f"{'step':<22}{'fastnn':>10}{'numpy':>10}{'torch':>10}{'floor':>10}"
          f"{'vs numpy':>10}{'vs torch':>10}{'floor x':>9}")
    rows = [(f"{optimizer} batch {n}", MLP, n, optimizer, False)
            for optimizer in ("sgd", "adam") for n in (32, 128, 512)]
    rows.append(("BN 784-[512]x4-10 128", DEEP, 128, "sgd", True))
    for label, sizes, n, optimizer, batch_norm in rows:
        lr = 0.01 if optimizer == "sgd" else 1e-3
        mine, numpy, torch, floor = w.best_times([
            w.fastnn_step(sizes, n, optimizer=optimizer, lr=lr, batch_norm=batch_norm),
            None if optimizer != "sgd" else (w.numpy_batch_norm_step(sizes, n) if batch_norm
                                             else w.numpy_step(sizes, n)),
            w.torch_step(sizes, n, optimizer=optimizer, lr=lr, batch_norm=batch_norm),
            w.adam_floor_step(sizes, n) if optimizer == "adam" else w.gemm_floor_step(sizes, n)],
            repeats)
        print(f"{label:<22}{us(mine):>10}{us(numpy):>10}{us(torch):>10}{us(floor):>10}"
              f"{ratio(numpy, mine):>10}{ratio(torch, mine):>10}{mine / floor:8.2f}x")


def elementwise(repeats):
    """Each kernel beside NumPy, torch and its memory-traffic floor: the fastest NumPy pass
    that reads and writes as many arrays (a copy for one input, an add for two)."""
    print("\n== elementwise kernels on 512x1024 float32; times in µs ==")
    print(f"{'kernel':<24}{'fastnn':>10}{'numpy':>10}{'torch':>10}{'traffic':>10}"
          f"{'vs numpy':>10}{'vs torch':>10}")
    torch_fwd, torch_bwd = w.torch_elementwise()
    rng = np.random.default_rng(0)
    Z = (3 * rng.standard_normal((512, 1024))).astype(np.float32)
    dA = rng.standard_normal((512, 1024)).astype(np.float32)
    out = np.empty_like(Z)
    one_input = lambda: np.copyto(out, Z)  # noqa: E731
    two_inputs = lambda: np.add(Z, dA, out=out)  # noqa: E731

    def row(label, mine, numpy, torch, traffic):
        mine, numpy, torch, traffic = w.best_times([mine, numpy, torch, traffic], repeats)
        print(f"{label:<24}{us(mine):>10}{us(numpy):>10}{us(torch):>10}{us(traffic):>10}"
              f"{ratio(numpy, mine):>10}{ratio(torch, mine):>10}")

    for name in ACTIVATIONS:
        layer = Activation(name)
        A = layer._forward(Z).copy()
        torch_forward = torch_backward = None
        if name in torch_fwd:
            tZ, tA, tdA, tout = map(w.torch.from_numpy, (Z, A, dA, out))
            source = tZ if name == "softplus" else tA  # torch's softplus_backward takes the input
            torch_forward = lambda k=torch_fwd[name]: k(tZ, tout)  # noqa: E731
            torch_backward = lambda k=torch_bwd[name], s=source: k(s, tdA, tout)  # noqa: E731
        row(f"{name} forward", lambda: layer._forward(Z), lambda: w.NUMPY_FORWARD[name](Z, out),
            torch_forward, one_input)
        row(f"{name} backward", lambda: layer._backward(dA),
            lambda: w.NUMPY_BACKWARD[name](A, dA, out), torch_backward,
            one_input if name == "identity" else two_inputs)  # identity's backward reads dA only
    bn = fastnn.BatchNorm(1024)
    numpy_bn = w.NumpyBatchNorm(512, 1024, np.float32)
    row("batch norm fwd+bwd", lambda: (bn._forward(Z), bn._backward(dA)), lambda: numpy_bn(Z, dA),
        w.torch_batch_norm(Z, dA) if w.torch is not None else None,
        lambda: (one_input(), two_inputs()))
    dropout = fastnn.Dropout(0.5, rng=0)
    mask = np.empty(Z.shape, bool)
    numpy_rng = np.random.default_rng(0)

    def numpy_dropout():  # the usual inverted dropout: a uniform draw, a mask, a scaled product
        np.less(numpy_rng.random(Z.shape, dtype=np.float32), 0.5, out=mask)
        np.multiply(Z, mask, out=out)
        np.multiply(out, 2.0, out=out)

    torch_dropout = None
    if w.torch is not None:
        tZ = w.torch.from_numpy(Z)
        torch_dropout = lambda: w.torch.nn.functional.dropout(tZ, 0.5, True)  # noqa: E731
    row("dropout forward", lambda: dropout._forward(Z), numpy_dropout, torch_dropout, one_input)
    labels = rng.integers(0, 1024, 512)
    grad = np.empty_like(Z)
    numpy_ce = w.NumpySoftmaxCE(512, 1024, np.float32)
    row("softmax CE fwd+bwd", lambda: _losses.softmax_cross_entropy(Z, labels, grad),
        lambda: numpy_ce(Z, labels), w.torch_softmax_ce(Z, labels) if w.torch is not None else None,
        one_input)


def dense(repeats):
    print("\n== dense forward vs NumPy matmul + bias (float32); times in µs ==")
    print(f"{'shape':<18}{'fastnn':>10}{'numpy':>10}{'torch':>10}{'vs numpy':>10}{'vs torch':>10}")
    from bench_dense import SHAPES, _impls
    for shape in SHAPES:
        impls = _impls(*shape, np.float32, "forward")
        mine, numpy, torch = w.best_times([impls["fastnn"], impls["numpy"], impls.get("torch")], repeats)
        print(f"{'x'.join(map(str, shape)):<18}{us(mine):>10}{us(numpy):>10}{us(torch):>10}"
              f"{ratio(numpy, mine):>10}{ratio(torch, mine):>10}")


def epoch(repeats):
    """One epoch of Fashion-MNIST's 60,000 training images at batch 64, in samples/s: the same
    work (784-256-128-10 ReLU, plain SGD) in NumPy and fastnn, and ``fastnn train``'s defaults
    (Adam, cosine schedule, dropout 0.2, 10% held out and evaluated after the epoch)."""
    import time

    from fastnn import cli, datasets
    from fastnn.training import fit

    print("\n== one epoch of Fashion-MNIST (60,000 images, batch 64); samples/s ==")
    try:
        X, y, _, _ = datasets.load_dataset("fashion-mnist", download_missing=False, progress=False)
    except datasets.DatasetNotFoundError as exc:
        print(f"skipped: {str(exc).splitlines()[0]}")
        return
    n = 64
    starts = range(0, len(X) - n + 1, n)
    numpy_mlp = w.NumpyMLP(MLP, n)
    net = fastnn.mlp(MLP, rng=0)
    sgd = fastnn.SGD(net.parameters(), lr=0.01)

    def numpy_epoch():
        for i in starts:
            numpy_mlp.step(X[i:i + n], y[i:i + n])

    def fastnn_epoch():
        for i in starts:
            net.train_step(X[i:i + n], y[i:i + n], sgd)

    args = cli.build_parser().parse_args(["train", "--dataset", "fashion-mnist", "--epochs", "1"])
    X_train, y_train, X_val, y_val = datasets.train_val_split(X, y, args.val_split, 0)

    def cli_epoch():
        model = cli._build_net(args, cli._architecture(args, X.shape[1], 10), args.seed)
        optimizer = cli._build_optimizer(args, model)
        schedule = cli._build_schedule(args, optimizer, -(-len(X_train) // args.batch_size))
        start = time.perf_counter()
        fit(model, X_train, y_train, optimizer=optimizer, epochs=1, batch_size=args.batch_size,
            validation_data=(X_val, y_val), schedule=schedule, rng=args.seed)
        return time.perf_counter() - start

    same_numpy, same_fastnn = w.best_times([numpy_epoch, fastnn_epoch], repeats=max(2, repeats // 2),
                                           min_seconds=0)
    cli_seconds = min(cli_epoch() for _ in range(max(2, repeats // 2)))
    images = len(starts) * n
    print(f"same work, NumPy      {images / same_numpy:10,.0f}")
    print(f"same work, fastnn     {images / same_fastnn:10,.0f}   ({same_numpy / same_fastnn:.2f}x NumPy)")
    print(f"fastnn train defaults {len(X_train) / cli_seconds:10,.0f}   (Adam, dropout 0.2, "
          f"{len(X_val)} validation images evaluated)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--only", choices=["steps", "elementwise", "dense", "epoch"],
                        help="one table only")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    print(f"fastnn {fastnn.__version__}, numpy {np.__version__}, "
          f"torch {w.torch.__version__ if w.torch is not None else 'not installed'}, "
          f"threads {fastnn.get_num_threads()}")
    for name, table in (("steps", steps), ("elementwise", elementwise), ("dense", dense),
                        ("epoch", epoch)):
        if args.only in (None, name):
            table(repeats)


if __name__ == "__main__":
    main()
