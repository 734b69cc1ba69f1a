"""Build script: one C extension per layer of the loop (see DESIGN in README).

Set GMPLOOP_BUILD_DEBUG=1 to compile in the invariant checks and the created/freed
counters (GMPLOOP_DEBUG_BUILD in the C code), and Cython's bounds checks.
"""
import glob
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG_BUILD = os.environ.get("GMPLOOP_BUILD_DEBUG", "") not in ("", "0")

# Leaves first, then the loop: each row only cimports rows above it.
MODULES = ["_runq", "_timers", "_poller", "_handles", "_loop"]
# Then the transports, which cimport the loop; any other gmploop/_*.pyx after them.
MODULES += sorted(
    os.path.basename(p)[:-4] for p in glob.glob("gmploop/_*.pyx")
    if os.path.basename(p)[:-4] not in MODULES)

macros = [("GMPLOOP_DEBUG_BUILD", "1" if DEBUG_BUILD else "0")]
cflags = ["-O2"] if not DEBUG_BUILD else ["-O0", "-g"]
if sys.platform.startswith("linux"):
    cflags.append("-D_GNU_SOURCE")

extensions = [
    Extension(
        f"gmploop.{name}",
        [f"gmploop/{name}.pyx"],
        include_dirs=["gmploop/includes"],
        define_macros=macros,
        extra_compile_args=cflags,
    )
    for name in MODULES
]

directives = {
    "language_level": 3,
    "embedsignature": True,
    "boundscheck": DEBUG_BUILD,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG_BUILD,
    # Every module says it runs without the GIL, or importing gmploop on a free-threaded
    # build would turn the GIL back on for the whole process. What makes that true:
    # 'Threads' in _loop.pyx and 'Free-threaded builds' in _threadrt.py.
    "freethreading_compatible": True,
}

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        compile_time_env={"GMPLOOP_DEBUG_BUILD": DEBUG_BUILD},
        annotate=os.environ.get("GMPLOOP_ANNOTATE", "") not in ("", "0"),
    ),
)
