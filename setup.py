"""Build the Cython kernels in fastnn_c, as fastnn_c/_manifest.py lists them.

Every kernel family is compiled once per SIMD level, as ``fastnn_c.<level>.<family>``;
fastnn_c/__init__.py binds each ``fastnn_c.<family>`` to the widest level the CPU runs, so a
wheel runs on any x86-64 and fast on this one. ``_blas`` is built once. The compile flags
per compiler and per level come from the manifest; build_ext probes the compiler (as
scikit-learn's OpenMP helper does) and builds what it can: without OpenMP the kernels run
single-threaded, without a level's flags that level is left out, and the build says so once.

Speed: Cython's utility code (memoryviews, fused dispatch) is generated once into the shared
module ``fastnn_c._cyutility`` instead of into every module, Cython runs on every core, the
extensions compile in parallel (one job per core unless ``-j`` says otherwise), and release
builds carry no debug info. Every extension links the CBLAS of ``scipy-openblas32``
(measured faster than ``scipy.linalg.cython_blas`` at the MLP shapes; benchmarks/README.md).

Environment switches
--------------------
FASTNN_DEBUG_CYTHON=1   -O1 -g and Cython's checks, generic level only: the build
                        scripts/sanitize.sh instruments (the kernels' pointer loops are guarded
                        by AddressSanitizer, not by boundscheck).
FASTNN_MARCH_NATIVE=1   compile with ``-march=native`` (local builds only, not for wheels).
FASTNN_NO_OPENMP=1      build without OpenMP even if the compiler has it.
FASTNN_NO_AVX2=1        build the generic level only.
"""
import contextlib
import glob
import os
import platform
import runpy
import sys
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

MANIFEST = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       "fastnn_c", "_manifest.py"))
FAMILIES, PLAIN, LEVELS, COMPILERS = (MANIFEST[key] for key in
                                      ("FAMILIES", "PLAIN", "LEVELS", "COMPILERS"))
SHARED = f"fastnn_c.{MANIFEST['CYTHON_SHARED']}"
X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _flag(name):
    return os.environ.get(name) == "1"


def extensions():
    """Every module the manifest names, at every level; build_ext drops what cannot build.

    Each depends on every C header of fastnn_c: Cython tracks the .pxd files a module
    cimports, not the headers it includes, and a header change must rebuild every level."""
    headers = sorted(glob.glob("fastnn_c/*.h"))
    modules = [Extension(SHARED, sources=[])]
    modules += [Extension(f"fastnn_c.{name}", [f"fastnn_c/{name}.pyx"], depends=headers)
                for name in PLAIN]
    for level in LEVELS:
        modules += [Extension(f"fastnn_c.{level.name}.{family}", [f"fastnn_c/{family}.pyx"],
                              depends=headers)
                    for family in FAMILIES]
    return modules


def _level_of(ext):
    """The manifest level an extension belongs to (PLAIN and the shared module: generic)."""
    parts = ext.name.split(".")
    names = [level.name for level in LEVELS]
    return parts[1] if len(parts) == 3 and parts[1] in names else names[0]


@contextlib.contextmanager
def _quiet():
    """Keep a probe's compiler messages out of the build log (the build sums up in one line)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


class BuildExt(build_ext):
    """Cythonize per level and set each compiler's flags once the compiler is known."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        import numpy
        import scipy_openblas32
        from Cython.Build import cythonize

        kind = "msvc" if self.compiler.compiler_type == "msvc" else "unix"
        flags = COMPILERS[kind]
        debug = _flag("FASTNN_DEBUG_CYTHON")
        compile_args = list(flags.debug if debug else flags.release)
        if _flag("FASTNN_MARCH_NATIVE") and kind == "unix":
            compile_args.append("-march=native")
        openmp = self._openmp(flags)
        mvec_macros, mvec_libraries = self._libmvec(kind)
        levels, missing = self._levels(kind, debug, compile_args)
        # The one line this build says about what it could not do (or that it did it all).
        name = os.path.basename(self.compiler.compiler[0]) if kind == "unix" else "msvc"
        notes = [f"SIMD levels {', '.join(level.name for level in levels)}"]
        if missing:
            notes.append(f"{name} lacks the flags of {', '.join(missing)}, left out")
        if not openmp[0] and not _flag("FASTNN_NO_OPENMP"):
            notes.append(f"{name} has no OpenMP: the kernels run single-threaded")
        print(f"fastnn: building with {name}: {'; '.join(notes)}", file=sys.stderr)

        built = {level.name: level for level in levels}
        self.extensions = [ext for ext in self.extensions if _level_of(ext) in built]
        for ext in self.extensions:
            level = built[_level_of(ext)]
            ext.include_dirs += [numpy.get_include(), scipy_openblas32.get_include_dir(),
                                 "fastnn_c"]
            ext.library_dirs += [scipy_openblas32.get_lib_dir()]
            ext.libraries += [scipy_openblas32.get_library(), *mvec_libraries]
            ext.define_macros += [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), *mvec_macros]
            ext.extra_compile_args += [*compile_args, *openmp[0], *level.flags[kind]]
            ext.extra_link_args += openmp[1]
            if sys.platform.startswith("linux"):
                # fastnn_c/__init__.py imports scipy_openblas32, which loads the library
                # globally; this rpath (site-packages/scipy_openblas32/lib) is a fallback.
                up = "/.." * ext.name.count(".")
                ext.runtime_library_dirs += [f"$ORIGIN{up}/scipy_openblas32/lib"]

        directives = dict(language_level=3, boundscheck=debug, wraparound=debug,
                          initializedcheck=debug, nonecheck=False, cdivision=True, cpow=True)
        for level in levels:
            # One call per level: the C files of a family's builds differ (each holds its
            # module's name), so each level has its own build folder.
            exts = [ext for ext in self.extensions if _level_of(ext) == level.name]
            generated = cythonize(
                exts, compiler_directives=directives, quiet=True,
                build_dir=os.path.join(self.build_temp, "cython", level.name),
                nthreads=self.parallel if self.parallel > 1 else 0,
                shared_utility_qualified_name=SHARED)
            sources = {ext.name: ext.sources for ext in generated}
            for ext in exts:  # keep setuptools' Extension objects, with the C sources
                ext.sources = sources[ext.name]
        super().build_extensions()

    def copy_extensions_to_source(self):
        # --inplace: the level folders hold no source, so they may not exist yet
        package_dir = self.get_finalized_command("build_py").get_package_dir("fastnn_c")
        for ext in self.extensions:
            os.makedirs(os.path.join(package_dir, *ext.name.split(".")[1:-1]), exist_ok=True)
        super().copy_extensions_to_source()

    # Probes, each compiling a small program with this compiler -------------------------

    def _compiles(self, source, compile_args, link_args=None):
        with tempfile.TemporaryDirectory() as tmp, _quiet():
            path = os.path.join(tmp, "probe.c")
            with open(path, "w") as f:
                f.write(textwrap.dedent(source))
            try:
                objects = self.compiler.compile([path], output_dir=tmp, extra_postargs=compile_args)
                if link_args is not None:
                    self.compiler.link_executable(objects, os.path.join(tmp, "probe"),
                                                  extra_postargs=link_args)
            except Exception:
                return False
        return True

    def _openmp(self, flags):
        """(compile, link) flags for OpenMP, or two empty lists without it."""
        if _flag("FASTNN_NO_OPENMP"):
            return [], []
        source = """
            #include <omp.h>
            int main(void) {
                int n = 0;
            #pragma omp parallel reduction(+:n)
                n += 1;
                return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
            }
            """
        if self._compiles(source, list(flags.openmp_compile), list(flags.openmp_link)):
            return list(flags.openmp_compile), list(flags.openmp_link)
        return [], []

    def _libmvec(self, kind):
        """(macros, libraries) for glibc's vector math library where a SIMD call to it links.

        -Werror: Clang ignores GCC's ``__simd__`` attribute with a warning, and then the
        loops stay scalar whatever we link.
        """
        if kind != "unix" or not sys.platform.startswith("linux") or not X86_64:
            return [], []
        source = """
            #include <math.h>
            float expf(float) __attribute__((__simd__("notinbranch")));
            float x[64];
            int main(void) { for (int i = 0; i < 64; i++) x[i] = expf(x[i]); return x[0] != 1.0f; }
            """
        if self._compiles(source, ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Werror"],
                          ["-lmvec", "-lm"]):
            return [("FNN_LIBMVEC", "1")], ["mvec", "m"]
        return [], []

    def _levels(self, kind, debug, compile_args):
        """(levels to build, names of levels the compiler cannot build): generic, and each
        wider one whose flags this compiler takes."""
        levels, missing = [LEVELS[0]], []
        if debug or _flag("FASTNN_NO_AVX2") or not X86_64:
            return levels, missing
        source = """
            float x[256];
            int main(void) { for (int i = 0; i < 256; i++) x[i] = x[i] * x[i] + 1.0f; return x[0] != 1.0f; }
            """
        for level in LEVELS[1:]:
            if self._compiles(source, [*compile_args, *level.flags[kind]]):
                levels.append(level)
            else:
                missing.append(level.name)
        return levels, missing


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
