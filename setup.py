"""Build the Cython kernels in fastnn_c.

Every extension links the CBLAS of the ``scipy-openblas32`` package (measured faster than
``scipy.linalg.cython_blas`` at the MLP shapes; see benchmarks/README.md). OpenMP is used
when the compiler supports it; otherwise the same sources build single-threaded.

Environment switches
--------------------
FASTNN_DEBUG_CYTHON=1   bounds checks and wraparound on, for a debug test run.
FASTNN_MARCH_NATIVE=1   compile with ``-march=native`` (local builds only, not for wheels).
FASTNN_NO_OPENMP=1      build without OpenMP even if the compiler has it.
FASTNN_NO_AVX2=1        skip the AVX2 and AVX-512 variants.

On x86-64 each kernel family is built three times from the same .pyx: portable
(``fastnn_c.<family>``), AVX2+FMA (``<family>_avx2``) and AVX-512 (``<family>_avx512``,
512-bit vectors); fastnn_c/__init__.py loads the widest one the CPU runs, so a wheel runs
anywhere and fast here.
"""
import glob
import os
import platform
import sys
import tempfile
import textwrap

import numpy
import scipy_openblas32
from Cython.Build import cythonize
from setuptools import Extension, setup

# One extension per kernel family: every fastnn_c/*.pyx.
KERNEL_FAMILIES = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob("src/fastnn_c/*.pyx"))
# Families without per-element loops worth a SIMD build.
NOT_DISPATCHED = {"_blas"}
# The SIMD variants: module suffix -> extra compiler flags (fastnn_c/__init__.py picks one).
SIMD_VARIANTS = {
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx2", "-mfma", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl",
               "-mprefer-vector-width=512"],
}


def openmp_flags():
    """Return the OpenMP compile/link flags if a test program builds with them, else []."""
    if os.environ.get("FASTNN_NO_OPENMP") == "1" or sys.platform == "win32":
        return []
    source = textwrap.dedent("""
        #include <omp.h>
        int main(void) { int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1; }
        """)
    if _compiles(source, ["-fopenmp"], ["-fopenmp"]):
        return ["-fopenmp"]
    print("fastnn: compiler has no OpenMP; kernels build single-threaded", file=sys.stderr)
    return []


def libmvec_flags():
    """(macros, libraries) for glibc's vector math library if a SIMD call to it links here."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return [], []
    source = textwrap.dedent("""
        #include <math.h>
        float expf(float) __attribute__((__simd__("notinbranch")));
        float x[64];
        int main(void) { for (int i = 0; i < 64; i++) x[i] = expf(x[i]); return x[0] != 1.0f; }
        """)
    if _compiles(source, ["-O3", "-fno-math-errno", "-fno-trapping-math"], ["-lmvec", "-lm"]):
        return [("FASTNN_LIBMVEC", "1")], ["mvec", "m"]
    print("fastnn: no libmvec; exp/tanh loops stay scalar", file=sys.stderr)
    return [], []


def _compiles(source, compile_args, link_args):
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler

    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=compile_args)
            compiler.link_executable(objects, os.path.join(tmp, "probe"), extra_postargs=link_args)
        except Exception:
            return False
    return True


def extensions():
    debug = os.environ.get("FASTNN_DEBUG_CYTHON") == "1"
    omp = openmp_flags()
    mvec_macros, mvec_libraries = libmvec_flags()
    # -fno-math-errno/-fno-trapping-math keep IEEE results (NaN and inf propagate as usual)
    # but let loops that call exp/tanh vectorise; there is deliberately no -ffast-math.
    compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math", *omp]
    if os.environ.get("FASTNN_MARCH_NATIVE") == "1":
        compile_args.append("-march=native")
    if debug:
        compile_args = ["-O1", "-g", *omp]
    common = dict(
        include_dirs=[numpy.get_include(), scipy_openblas32.get_include_dir(), "src/fastnn_c"],
        library_dirs=[scipy_openblas32.get_lib_dir()],
        libraries=[scipy_openblas32.get_library(), *mvec_libraries],
        # At run time fastnn_c/__init__.py imports scipy_openblas32, which loads the library
        # globally; the relative rpath is a fallback for a plain site-packages install.
        runtime_library_dirs=["$ORIGIN/../scipy_openblas32/lib"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), *mvec_macros],
        extra_compile_args=compile_args,
        extra_link_args=omp,
    )
    modules = [
        Extension(f"fastnn_c.{name}", [f"src/fastnn_c/{name}.pyx"], **common)
        for name in KERNEL_FAMILIES
    ]
    for variant, flags in SIMD_VARIANTS.items():
        if debug or not simd_supported_by_compiler(flags):
            continue
        simd_common = dict(common, extra_compile_args=[*compile_args, *flags])
        os.makedirs(os.path.join("build", variant), exist_ok=True)
        for name in KERNEL_FAMILIES:
            if name in NOT_DISPATCHED:
                continue
            source = os.path.join("build", variant, f"{name}_{variant}.pyx")
            text = f'include "{name}.pyx"\n'
            if not os.path.exists(source) or open(source).read() != text:
                with open(source, "w") as f:
                    f.write(text)
            modules.append(Extension(f"fastnn_c.{name}_{variant}", [source], **simd_common))
    directives = dict(
        language_level=3,
        boundscheck=debug,
        wraparound=debug,
        initializedcheck=debug,
        nonecheck=False,
        cdivision=True,
        cpow=True,
    )
    return cythonize(modules, compiler_directives=directives, include_path=["src/fastnn_c"])


def simd_supported_by_compiler(flags):
    if os.environ.get("FASTNN_NO_AVX2") == "1" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    return _compiles("int main(void) { return 0; }", flags, [])


setup(ext_modules=extensions())
