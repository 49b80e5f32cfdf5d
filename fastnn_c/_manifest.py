"""What fastnn_c is built from: kernel families, SIMD levels, and flags per compiler.

setup.py compiles every family in ``FAMILIES`` once per level in ``LEVELS``, as the
extension module ``fastnn_c.<level>.<family>``; fastnn_c/__init__.py imports every family
of the widest level that the CPU runs, ``FASTNN_SIMD`` allows and the build has, and binds
it to ``fastnn_c.<family>``. A family added here is built at every level and selected at
import; tests/test_simd.py fails on a built module that no entry here names.

setup.py reads this file before anything is compiled: plain data and the standard library
only.
"""
from typing import NamedTuple

#: Kernel families, one ``fastnn_c/<family>.pyx`` each, built at every SIMD level.
FAMILIES = ("activations", "batchnorm", "dense", "diagnostics", "dropout", "losses", "optim",
            "packed", "regularization", "sparse", "stack")

#: Modules built once, with the generic flags: nothing in them is faster at a wider level.
PLAIN = ("_blas", "_kernel")

#: Cython's utility code (memoryviews, fused-function dispatch), generated once and shared by
#: every module instead of compiled into each one.
CYTHON_SHARED = "_cyutility"


class Level(NamedTuple):
    """One SIMD build: its name, the CPU features its code needs, its flags per compiler."""

    name: str
    #: Names from ``fastnn_c._blas.CPU_FEATURES``; the feature test includes the OS's support.
    cpu_features: tuple
    #: Compiler kind ("unix": GCC and Clang; "msvc") -> extra flags.
    flags: dict


#: The levels, narrowest first. Only ``generic`` is built off x86-64.
LEVELS = (
    Level("generic", (), {"unix": (), "msvc": ()}),
    Level("avx2", ("avx2", "fma"), {"unix": ("-mavx2", "-mfma"), "msvc": ("/arch:AVX2",)}),
    Level("avx512", ("avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl"),
          {"unix": ("-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl",
                    "-mprefer-vector-width=512"),
           "msvc": ("/arch:AVX512",)}),
)


class Compiler(NamedTuple):
    """Flags of one compiler kind, besides the level's."""

    release: tuple
    debug: tuple
    openmp_compile: tuple
    openmp_link: tuple


#: Keyed by distutils' ``compiler_type`` ("unix" covers GCC and Clang, which take the same
#: flags). Release builds keep IEEE semantics: never -ffast-math; math functions need not set
#: errno nor keep FP traps, so exp/tanh loops vectorise while NaN and inf keep their meaning.
#: ``-g0`` overrides the ``-g`` in Python's own CFLAGS (it made each compile about 1.6x slower).
#: MSVC is written as scikit-learn's OpenMP helper writes it and has not been tested: its
#: default /fp:precise is IEEE, /openmp is OpenMP 2.0 (enough for prange).
COMPILERS = {
    "unix": Compiler(release=("-O3", "-g0", "-fno-math-errno", "-fno-trapping-math"),
                     debug=("-O1", "-g"),
                     openmp_compile=("-fopenmp",), openmp_link=("-fopenmp",)),
    "msvc": Compiler(release=("/O2",), debug=("/Od", "/Zi"),
                     openmp_compile=("/openmp",), openmp_link=()),
}
