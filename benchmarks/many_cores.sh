#!/usr/bin/env bash
# The many-core measurement of benchmarks/HISTORY.md ("Many cores"), as one prepared script:
# run from the repository root on a machine that has Python with NumPy, torch, onnxruntime
# and JAX but cannot install anything, with the wheels fastnn's build needs in .whl/
# (scipy-openblas32, Cython, setuptools; see the README section for the download command).
# Builds fastnn in place, then runs benchmarks/report.py at one thread per core. Results go
# to $OUT (default /tmp/many_cores): report.md, the JSON files, lscpu.txt, build.log.
set -uo pipefail
OUT=${OUT:-/tmp/many_cores}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
python3 setup.py -q build_ext --inplace -j "$(nproc)" > "$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log"; exit 1; }
export PYTHONPATH=.:/tmp/site
lscpu > "$OUT/lscpu.txt"
threads=$(nproc)
common=(--rounds 2 --repeats 5 --warmup 0.1)
python3 benchmarks/report.py --threads "$threads" --only inference --batches 1,8,32,128,256,512 \
    "${common[@]}" --json "$OUT/inference.json" 2>>"$OUT/stderr.txt" | tee "$OUT/report.md"
python3 benchmarks/report.py --threads "$threads" --only train,elementwise \
    --libs fastnn,numpy,torch,jax --train-batches 32,512,4096 --shapes 512x1024,4096x1024 \
    "${common[@]}" --json "$OUT/train.json" 2>>"$OUT/stderr.txt" | tee -a "$OUT/report.md"
# The same training steps and passes with the step's products on OpenBLAS instead of fastnn's
# micro-kernel (fastnn._config.micro_kernel_threads picks the micro-kernel wherever fastnn runs
# AVX-512, from per-core and 2-core measurements): the measurement that says whether the rule
# holds at this many cores.
FASTNN_MICRO_KERNEL=0 python3 benchmarks/report.py --threads "$threads" --only train,elementwise \
    --libs fastnn --train-batches 32,512,4096 --shapes 512x1024,4096x1024 "${common[@]}" \
    --json "$OUT/train_openblas.json" 2>>"$OUT/stderr.txt" | tee -a "$OUT/report.md"
# Thread scaling of predict at batch 256: fastnn and torch at 4 threads.
python3 benchmarks/report.py --threads 4 --only inference --libs fastnn,torch --batches 256 \
    "${common[@]}" 2>>"$OUT/stderr.txt" | tee -a "$OUT/report.md"
# One core's FMA peak and the micro-kernel's rate at 16 rows (what one thread's share of a
# batch-256 predict is at 16 threads), when the compiler takes the avx512 level's flags.
if gcc -O3 -fno-math-errno -fno-trapping-math -mavx2 -mfma -mavx512f -mavx512dq -mavx512bw \
        -mavx512vl -mprefer-vector-width=512 -I fastnn_c benchmarks/micro_kernel.c \
        -o /tmp/micro_kernel 2>>"$OUT/stderr.txt"; then
    /tmp/micro_kernel 16 784 256 128 10 | tee -a "$OUT/report.md"
fi
