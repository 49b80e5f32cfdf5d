"""Nielsen's runs of ``experiment vanishing-gradients`` against a second implementation (PyTorch).

The same setting in torch: the same initial weights (copied from the fastnn network), the
same full-batch gradient descent (η = 0.1, L2 decay ηλ/n on the weights only, as
network2.py), the same cost (network2's cross-entropy on sigmoid outputs, summed over the
units, averaged over the images), float64 in both so that the two trajectories can be
compared step by step. Runs where torch is installed (CI installs it).
"""
import numpy as np
import pytest

from fastnn.experiments import NielsenCrossEntropy
from fastnn.network import mlp
from fastnn.optimizers import SGD

torch = pytest.importorskip("torch")

LR, LMBDA, N_TRAIN = 0.1, 5.0, 1000


@pytest.fixture(scope="module")
def nielsen_data(mnist_small):
    X, y = mnist_small[0][:N_TRAIN].astype(np.float64), mnist_small[1][:N_TRAIN]
    return X, np.eye(10)[y]


def _fastnn_run(net, X, T, epochs, watch):
    """Full-batch GD; per epoch, before the update, ‖grad‖ of each watched parameter."""
    optimizer = SGD(net.parameters(), lr=LR, weight_decay=LMBDA / len(X))
    norms = []
    for _ in range(epochs):
        net.loss(X, T)
        net.backward()
        norms.append([np.linalg.norm(p.grad) for p in watch(net)])
        optimizer.step()
    return np.array(norms)


def _torch_copy(net):
    """torch modules with the fastnn network's parameters (Dense weights are (in, out))."""
    modules, decayed, plain = [], [], []
    for layer in net.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            linear = torch.nn.Linear(layer.in_features, layer.out_features,
                                     bias=layer.bias is not None, dtype=torch.float64)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.weight.data.T.copy()))
                if layer.bias is not None:
                    linear.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
                    plain.append(linear.bias)
            decayed.append(linear.weight)
            modules.append(linear)
        elif kind == "BatchNorm":
            bn = torch.nn.BatchNorm1d(layer.n_features, eps=layer.eps, momentum=layer.momentum,
                                      dtype=torch.float64)
            params = {p.name: p.data for p in layer.parameters()}
            with torch.no_grad():
                bn.weight.copy_(torch.from_numpy(params["gamma"].copy()))
                bn.bias.copy_(torch.from_numpy(params["beta"].copy()))
            plain += [bn.weight, bn.bias]
            modules.append(bn)
        else:
            modules.append({"elu": torch.nn.ELU(), "relu": torch.nn.ReLU(),
                            "sigmoid": torch.nn.Sigmoid()}[layer.name])
    return torch.nn.Sequential(*modules), decayed, plain


def _torch_run(model, decayed, plain, X, T, epochs, watch):
    # network2: w <- (1 - eta*lambda/n) w - eta*grad, biases not decayed.
    optimizer = torch.optim.SGD([{"params": decayed, "weight_decay": LMBDA / len(X)},
                                 {"params": plain, "weight_decay": 0.0}], lr=LR)
    X, T = torch.from_numpy(X), torch.from_numpy(T)
    norms = []
    for _ in range(epochs):
        optimizer.zero_grad()
        cost = torch.nn.functional.binary_cross_entropy_with_logits(
            model(X), T, reduction="sum") / len(X)
        cost.backward()
        norms.append([float(p.grad.norm()) for p in watch(model)])
        optimizer.step()
    return np.array(norms)


def _hidden_biases_fastnn(net):
    return [layer.bias for layer in net.layers if type(layer).__name__ == "Dense"][:-1]


def _hidden_biases_torch(model):
    return [m.bias for m in model if isinstance(m, torch.nn.Linear)][:-1]


def _experiment_draw(arm, depth, rng=0):
    """The seed vanishing_gradients(rng=rng) gives the network of (arm, depth): one draw
    from the base generator per (arm, depth) run, in order."""
    from fastnn._validation import check_rng
    from fastnn.experiments import VANISHING_ARMS

    labels, depths = [a[0] for a in VANISHING_ARMS], (1, 2, 3, 4)
    draws = check_rng(rng).integers(2**63, size=len(labels) * len(depths))
    return np.random.default_rng(draws[labels.index(arm) * len(depths) + depths.index(depth)])


def test_elu_he_divergence_is_the_setting_not_fastnn(nielsen_data):
    # The ELU + He row of vanishing-gradients: 784-30-30-30-30-10, the experiment's own draw.
    X, T = nielsen_data
    epochs = 20
    net = mlp([784, 30, 30, 30, 30, 10], "elu", loss=NielsenCrossEntropy(), init="he_normal",
              rng=_experiment_draw("ELU, He init", 4), dtype=np.float64)
    model, decayed, plain = _torch_copy(net)
    with np.errstate(all="ignore"):
        ours = _fastnn_run(net, X, T, epochs, _hidden_biases_fastnn)
    theirs = _torch_run(model, decayed, plain, X, T, epochs, _hidden_biases_torch)
    # Step by step the same speeds of learning, through the growth, until overflow ...
    finite = np.all(np.isfinite(theirs) & (theirs < 1e30), axis=1)
    assert finite[:10].all()
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-6)
    # ... and torch explodes too: the divergence belongs to the setting (eta = 0.1 on
    # Nielsen's summed cost with this He-initialized ELU draw), not to fastnn's kernels.
    assert np.nanmax(theirs[finite]) > 1e6


def _sharpness(model, params, X, T, iterations=40, seed=0):
    """Largest eigenvalue of the cost's Hessian in ``params``, by power iteration on
    Hessian-vector products (double backward)."""
    generator = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in params]
    value = 0.0
    for _ in range(iterations):
        norm = torch.sqrt(sum((x * x).sum() for x in v))
        v = [x / norm for x in v]
        cost = torch.nn.functional.binary_cross_entropy_with_logits(
            model(X), T, reduction="sum") / len(X)
        grads = torch.autograd.grad(cost, params, create_graph=True)
        hv = torch.autograd.grad(sum((g * x).sum() for g, x in zip(grads, v)), params)
        value = float(sum((h * x).sum() for h, x in zip(hv, v)))
        v = [h.detach() for h in hv]
    return value


def _first_jump(norms, factor=3.0, window=10):
    """First epoch e at which ‖g‖ exceeds ``factor`` times its value ``window`` epochs before."""
    ratios = norms[window:] / norms[:-window]
    hits = np.nonzero(ratios > factor)[0]
    return int(hits[0]) + window if len(hits) else None


@pytest.mark.slow  # 500 full-batch epochs in each library and two power iterations: ~40 s
def test_batch_norm_jump_is_gradient_descent_at_the_edge_of_stability(nielsen_data):
    # The sigmoid + batch norm row, 784-30-10, the experiment's draw: ‖dC/dW¹‖ (and with it
    # ‖ΔW‖/‖W‖ = η‖dC/dW + λW/n‖/‖W‖) jumps several-fold within a few epochs, late in training.
    X, T = nielsen_data
    epochs = 500
    net = mlp([784, 30, 10], "sigmoid", loss=NielsenCrossEntropy(), init="nielsen",
              rng=_experiment_draw("sigmoid, Nielsen init, batch norm", 1), dtype=np.float64,
              batch_norm=True)
    model, decayed, plain = _torch_copy(net)

    def first_weight(layers):
        return [next(m for m in layers if hasattr(m, "weight") and m.weight.ndim == 2).weight]

    ours = _fastnn_run(net, X, T, epochs, lambda n: [n.layers[0].weight])[:, 0]
    theirs = _torch_run(model, decayed, plain, X, T, epochs, first_weight)[:, 0]
    jump_ours, jump_theirs = _first_jump(ours), _first_jump(theirs)
    # torch has the same jump at the same time: not a fastnn bug ...
    assert jump_ours is not None and jump_theirs is not None, (ours[::10], theirs[::10])
    assert abs(jump_ours - jump_theirs) <= 10
    np.testing.assert_allclose(ours[:jump_theirs - 30], theirs[:jump_theirs - 30], rtol=1e-5)

    # ... and its cause: progressive sharpening. The cost's sharpness (top Hessian
    # eigenvalue) grows during training; full-batch GD is stable along a direction only while
    # its curvature is below 2/η. Once the sharpness passes 2/η the iterates oscillate along
    # that eigenvector with a growing amplitude, which becomes visible as the jump; afterwards
    # GD hovers at the edge of stability (Cohen et al., ICLR 2021).
    model, decayed, plain = _torch_copy(mlp(
        [784, 30, 10], "sigmoid", loss=NielsenCrossEntropy(), init="nielsen",
        rng=_experiment_draw("sigmoid, Nielsen init, batch norm", 1), dtype=np.float64,
        batch_norm=True))
    params = decayed + plain
    Xt, Tt = torch.from_numpy(X), torch.from_numpy(T)
    early = _sharpness(model, params, Xt, Tt)
    _torch_run(model, decayed, plain, X, T, jump_theirs - 10, lambda m: [])
    before_jump = _sharpness(model, params, Xt, Tt)
    assert early < 2 / LR < before_jump, (early, before_jump)
