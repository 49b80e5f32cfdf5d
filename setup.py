"""Build the Cython kernels in fastnn_c.

Every extension links the CBLAS of the ``scipy-openblas32`` package (measured faster than
``scipy.linalg.cython_blas`` at the MLP shapes; see benchmarks/README.md). OpenMP is used
when the compiler supports it; otherwise the same sources build single-threaded.

Environment switches
--------------------
FASTNN_DEBUG_CYTHON=1   bounds checks and wraparound on, for a debug test run.
FASTNN_MARCH_NATIVE=1   compile with ``-march=native`` (local builds only, not for wheels).
FASTNN_NO_OPENMP=1      build without OpenMP even if the compiler has it.
"""
import glob
import os
import sys
import tempfile
import textwrap

import numpy
import scipy_openblas32
from Cython.Build import cythonize
from setuptools import Extension, setup

# One extension per kernel family: every fastnn_c/*.pyx.
KERNEL_FAMILIES = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob("fastnn_c/*.pyx"))


def openmp_flags():
    """Return the OpenMP compile/link flags if a test program builds with them, else []."""
    if os.environ.get("FASTNN_NO_OPENMP") == "1" or sys.platform == "win32":
        return []
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    source = textwrap.dedent("""
        #include <omp.h>
        int main(void) { int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1; }
        """)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=["-fopenmp"])
            compiler.link_executable(objects, os.path.join(tmp, "probe"), extra_postargs=["-fopenmp"])
        except Exception:
            print("fastnn: compiler has no OpenMP; kernels build single-threaded", file=sys.stderr)
            return []
    return ["-fopenmp"]


def extensions():
    debug = os.environ.get("FASTNN_DEBUG_CYTHON") == "1"
    omp = openmp_flags()
    compile_args = ["-O3", "-fno-math-errno", *omp]
    if os.environ.get("FASTNN_MARCH_NATIVE") == "1":
        compile_args.append("-march=native")
    if debug:
        compile_args = ["-O1", "-g", *omp]
    common = dict(
        include_dirs=[numpy.get_include(), scipy_openblas32.get_include_dir()],
        library_dirs=[scipy_openblas32.get_lib_dir()],
        libraries=[scipy_openblas32.get_library()],
        # At run time fastnn_c/__init__.py imports scipy_openblas32, which loads the library
        # globally; the relative rpath is a fallback for a plain site-packages install.
        runtime_library_dirs=["$ORIGIN/../scipy_openblas32/lib"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=omp,
    )
    modules = [
        Extension(f"fastnn_c.{name}", [f"fastnn_c/{name}.pyx"], **common)
        for name in KERNEL_FAMILIES
    ]
    directives = dict(
        language_level=3,
        boundscheck=debug,
        wraparound=debug,
        initializedcheck=debug,
        nonecheck=False,
        cdivision=True,
        cpow=True,
    )
    return cythonize(modules, compiler_directives=directives)


setup(ext_modules=extensions())
