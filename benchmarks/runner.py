"""Each library in a process of its own, rounds interleaved: how report.py compares libraries.

Two libraries' thread pools in one process distort each other (PyTorch timed beside fastnn
ran up to 1.4x slower than alone; OpenBLAS's idle workers spin for a while after each call),
so every measurement runs in a fresh worker process that loads one library, sets its thread
count, builds its workloads once, warms each up, times it and prints one JSON line:

    python benchmarks/runner.py '{"lib": "torch", "threads": 2, "cases": [...]}'

``Runner.rounds`` starts the workers round by round: round r runs every row's libraries one
after the other (fastnn, numpy, torch, ...), then round r + 1 starts, so a slow spell of a
shared machine hits the libraries of a row alike; a row's figure is the median over rounds.

Threads (``--threads N`` of report.py): every worker's environment has OMP_NUM_THREADS,
OPENBLAS_NUM_THREADS and MKL_NUM_THREADS = N, and then

- fastnn: ``fastnn.set_num_threads(N)`` (its OpenBLAS; its own loops follow it);
- numpy: ``threadpoolctl.threadpool_limits(N)`` (the environment alone without threadpoolctl);
- torch: ``torch.set_num_threads(N)`` and ``torch.set_num_interop_threads(N)``;
- onnxruntime: ``SessionOptions.intra_op_num_threads = N`` (inter-op: the default, sequential);
- jax: XLA sizes its thread pool from the CPUs the process may run on, and has no flag for
  it (jax-ml/jax#1539: "setting the task affinity map is the correct way"), so below the
  number of available CPUs the worker pins itself to the first N before importing jax; at one
  thread also ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false``. ``JAX_PLATFORMS=cpu``.

Each worker reports the thread counts it then reads back from its library.
"""
import contextlib
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workloads as w  # noqa: E402

#: Every library a worker can measure, in the order a round runs them.
LIBRARIES = ("fastnn", "numpy", "torch", "onnxruntime", "jax")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: Environment variables that change what the libraries run; the header lists those set.
RECORDED_PREFIXES = ("OMP_", "OPENBLAS_", "MKL_", "KMP_", "GOMP_", "XLA_", "JAX_", "ORT_")


# -- the worker ---------------------------------------------------------------------------
def _set_threads(lib, threads):
    """Import ``lib`` with ``threads`` threads; return (module, what the library reports)."""
    if lib == "jax":
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
    module = importlib.import_module(lib)
    if lib == "fastnn":
        module.set_num_threads(threads)
        return module, {"blas": module.get_num_threads()}
    if lib == "numpy":
        threadpoolctl = w.optional("threadpoolctl")
        if threadpoolctl is None:
            return module, {"blas": f"{os.environ.get('OPENBLAS_NUM_THREADS')} (environment)"}
        threadpoolctl.threadpool_limits(threads)  # called, not a with block: in force from here on
        return module, {"blas": [p["num_threads"] for p in threadpoolctl.threadpool_info()
                                 if p["user_api"] == "blas"]}
    if lib == "torch":
        module.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # only allowed before the first inter-op work
            module.set_num_interop_threads(threads)
        return module, {"intra": module.get_num_threads(), "interop": module.get_num_interop_threads()}
    if lib == "onnxruntime":
        return module, {"intra_op": threads}
    if lib == "jax":
        return module, {"cpus": len(os.sched_getaffinity(0))}
    raise ValueError(f"unknown library {lib!r}")


def _versions(lib, module):
    """The library's version and what it runs on (SIMD level, BLAS kernels)."""
    if lib == "fastnn":
        import fastnn_c

        return {"version": module.__version__, "simd": fastnn_c.SIMD,
                "blas": _blas_info("scipy_openblas32")}
    if lib == "numpy":
        return {"version": module.__version__, "blas": _blas_info("numpy")}
    if lib == "torch":
        return {"version": module.__version__, "cpu": module.backends.cpu.get_cpu_capability()}
    if lib == "jax":
        jaxlib = w.optional("jaxlib")
        return {"version": module.__version__, "jaxlib": getattr(jaxlib, "__version__", None)}
    return {"version": module.__version__}


def _blas_info(path_part):
    """OpenBLAS's version and kernel architecture for the copy whose file path has ``path_part``."""
    threadpoolctl = w.optional("threadpoolctl")
    if threadpoolctl is None:
        return None
    for pool in threadpoolctl.threadpool_info():
        if pool["user_api"] == "blas" and path_part in pool["filepath"]:
            return f"{pool['internal_api']} {pool.get('version')} {pool.get('architecture')}"
    return None


def time_calls(fn, repeats, min_time, warmup):
    """Seconds per call of ``fn``: min and median over ``repeats`` blocks of ``number`` calls,
    each block at least ``min_time`` s, after a first call and ``warmup`` s of calls. A
    callable with ``block_until_ready`` (JAX's asynchronous steps) is waited for at the end
    of each block. The garbage collector is off while a block runs (as in ``timeit``)."""
    block = getattr(fn, "block_until_ready", None) or (lambda: None)
    fn()  # first call: JAX compiles, the libraries size their buffers
    block()
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < warmup:
        fn()
        calls += 1
    block()
    per_call = (time.perf_counter() - start) / calls
    number = max(1, int(np.ceil(min_time / per_call)))
    seconds = []
    for _ in range(repeats):
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(number):
                fn()
            block()
            seconds.append((time.perf_counter() - start) / number)
        finally:
            gc.enable()
    return {"min": min(seconds), "median": statistics.median(seconds), "number": number,
            "repeats": repeats}


def _build(lib, case, threads, context):
    """The closure a case times, or None where ``lib`` has no such workload."""
    kind = case["kind"]
    if kind == "predict":
        if "predictor" not in context:
            context["predictor"] = w.predictor(lib, w.mlp_weights(), threads, context.get("onnx_model"))
        return context["predictor"](w.batch(w.MLP, case["batch"])[0])
    if kind == "step":
        return w.step_case(lib, case["row"], case["batch"])
    if kind == "elementwise":
        return w.elementwise_case(lib, case["kernel"], case["direction"], tuple(case["shape"]))
    if kind == "traffic":
        return w.traffic_case(tuple(case["shape"]), case["passes"]) if lib == "numpy" else None
    if kind == "dense":
        return w.dense_case(lib, *case["shape"])
    raise ValueError(f"unknown case kind {kind!r}")


def _labels(lib, case, threads, context):
    """Labels of ``case["rows"]`` check rows (seed ``case["seed"]``), predicted in chunks of
    ``case["batch"]`` rows, so that every batch size's code path is checked."""
    if "predictor" not in context:
        context["predictor"] = w.predictor(lib, w.mlp_weights(), threads, context.get("onnx_model"))
    X = w.batch(w.MLP, case["rows"], seed=case["seed"])[0]
    step = case["batch"]
    return np.concatenate([np.asarray(context["predictor"](X[i:i + step])()).reshape(-1)
                           for i in range(0, len(X), step)]).tolist()


def worker(spec):
    """Run one worker's cases; return the JSON-able result."""
    lib, threads = spec["lib"], spec["threads"]
    try:
        module, thread_report = _set_threads(lib, threads)
    except ImportError as error:
        return {"lib": lib, "missing": f"not installed ({error})"}
    result = {"lib": lib, "threads": thread_report, "versions": _versions(lib, module), "results": []}
    context = {}
    if lib == "onnxruntime" and spec.get("onnx_model"):
        with open(spec["onnx_model"], "rb") as f:
            context["onnx_model"] = f.read()
    for case in spec.get("cases", []):
        if case["kind"] == "export_onnx":  # in a fastnn worker: the graph onnxruntime runs
            onnx_model = w.onnx_label_model(w.mlp_weights())
            with open(case["path"], "wb") as f:
                f.write(onnx_model)
            result["results"].append({"case": case, "done": True})
        elif case["kind"] == "labels":
            result["results"].append({"case": case, "labels": _labels(lib, case, threads, context)})
        else:
            fn = _build(lib, case, threads, context)
            entry = {"case": case}
            if fn is None:
                entry["skipped"] = f"{lib} has no such workload here"
            else:
                entry.update(time_calls(fn, spec.get("repeats", 7), spec.get("min_time", 0.05),
                                        spec.get("warmup", 0.2)))
            result["results"].append(entry)
    return result


# -- the parent ---------------------------------------------------------------------------
def case_key(case):
    return json.dumps(case, sort_keys=True)


class WorkerError(RuntimeError):
    """A worker process failed; the message holds what it printed."""


class Runner:
    """Starts workers with a thread count and timing settings; keeps what they report."""

    def __init__(self, threads, repeats=7, min_time=0.05, warmup=0.2, stat="min", log=sys.stderr):
        self.threads, self.repeats, self.min_time, self.warmup = threads, repeats, min_time, warmup
        self.stat, self.log = stat, log
        self.libraries = {}  # lib -> {"versions", "threads"} or {"missing": reason}
        self.raw = []  # every timed result, with its section, round and library

    def environment(self, lib):
        env = dict(os.environ)
        env.update({name: str(self.threads) for name in THREAD_VARIABLES})
        if lib == "jax":
            env["JAX_PLATFORMS"] = "cpu"
            if self.threads == 1:
                env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
        return env

    def run(self, lib, cases, **extra):
        """One worker process for ``lib`` over ``cases``; its JSON result."""
        spec = {"lib": lib, "threads": self.threads, "cases": cases, "repeats": self.repeats,
                "min_time": self.min_time, "warmup": self.warmup, **extra}
        done = subprocess.run([sys.executable, os.path.abspath(__file__), json.dumps(spec)],
                              capture_output=True, text=True, env=self.environment(lib))
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise WorkerError(f"the {lib} worker failed (exit status {done.returncode}) on "
                              f"{json.dumps(cases)[:300]}\n{done.stderr[-3000:]}")
        result = json.loads(lines[-1])
        if "missing" in result:
            self.libraries[lib] = {"missing": result["missing"]}
        else:
            self.libraries.setdefault(lib, {"versions": result["versions"], "threads": result["threads"]})
        return result

    def probe(self, libs):
        """Start one worker per library without cases: versions, threads, what is missing."""
        for lib in libs:
            if lib not in self.libraries:
                self.run(lib, [])
        return [lib for lib in libs if "missing" not in self.libraries[lib]]

    def available(self, libs):
        return [lib for lib in libs if lib in self.libraries and "missing" not in self.libraries[lib]]

    def rounds(self, section, rows, rounds, **extra):
        """Time ``rows`` = [{lib: [case, ...]}, ...] (one worker each) over ``rounds`` interleaved
        rounds. Returns {lib: {case_key: [seconds per round]}} (``self.stat`` of each
        worker's repeats; None where the library has no such workload)."""
        times = {}
        start = time.perf_counter()
        for r in range(rounds):
            for per_lib in rows:
                for lib, cases in per_lib.items():
                    result = self.run(lib, cases, **extra)
                    for entry in result.get("results", []):
                        seconds = entry.get(self.stat)
                        times.setdefault(lib, {}).setdefault(case_key(entry["case"]), []).append(seconds)
                        self.raw.append({"section": section, "round": r, "lib": lib, **entry})
            elapsed = time.perf_counter() - start
            print(f"[{section}] round {r + 1}/{rounds}: {elapsed:.0f} s so far, about "
                  f"{elapsed / (r + 1) * (rounds - r - 1):.0f} s to go", file=self.log, flush=True)
        return times


def median_of(times, lib, case):
    """Median over rounds of ``lib``'s seconds for ``case`` and (min, max) over rounds."""
    values = times.get(lib, {}).get(case_key(case))
    if not values or any(v is None for v in values):
        return None
    return statistics.median(values), min(values), max(values)


# -- the machine --------------------------------------------------------------------------
def machine():
    """CPU model, cores, caches, OS, Python, load and the environment variables that matter."""
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": _cpu_model(), "cpus": os.cpu_count(),
            "available_cpus": len(os.sched_getaffinity(0)), "caches": _caches(),
            "system": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(), "load": os.getloadavg()}
    lscpu = _lscpu()
    for key in ("Core(s) per socket", "Socket(s)", "Thread(s) per core"):
        if key in lscpu:
            info[key] = lscpu[key]
    if not info["caches"]:
        info["caches"] = "; ".join(f"{key} {lscpu[key]}" for key in lscpu if key.endswith("cache"))
    info["environment"] = {k: v for k, v in sorted(os.environ.items()) if k.startswith(RECORDED_PREFIXES)}
    return info


def _cpu_model():
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _lscpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


def _caches():
    """cpu0's caches from sysfs: "L1d 48K, L2 1024K per 1 CPU, L3 32768K per 2 CPUs"."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    parts = []
    try:
        entries = sorted(e for e in os.listdir(base) if e.startswith("index"))
    except OSError:
        return ""
    for entry in entries:
        def read(name, entry=entry):
            with open(os.path.join(base, entry, name)) as f:
                return f.read().strip()
        try:
            level, kind, size, shared = read("level"), read("type"), read("size"), read("shared_cpu_list")
        except OSError:
            continue
        if kind == "Instruction":
            continue
        name, sharing = f"L{level}" + ("d" if kind == "Data" else ""), _count_cpus(shared)
        parts.append(f"{name} {size} per {sharing} CPU" + ("s" if sharing > 1 else ""))
    return ", ".join(parts)


def _count_cpus(cpu_list):
    count = 0
    for part in cpu_list.split(","):
        low, _, high = part.partition("-")
        count += int(high) - int(low) + 1 if high else 1
    return count


if __name__ == "__main__":
    print(json.dumps(worker(json.loads(sys.argv[1]))), flush=True)
