"""Build the optional compiled mixture loss, ``skmdn._cmixture``.

Everything else about the package is in ``setup.cfg``. The extension is
``optional``: where it does not compile (no C compiler, another platform),
the install goes on without it and skmdn computes the same loss with torch
(``skmdn/_fused.py`` says which one runs). On x86-64 Linux with glibc the
loops call glibc's vector math functions (libmvec).
"""

import platform
import sys

from setuptools import Extension, setup

compile_args, macros, libraries = [], [], []
if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64"):
    macros.append(("SKMDN_MVEC", "1"))
    libraries.append("mvec")
if sys.platform != "win32":
    # -fno-math-errno: exp and log may be vectorised (no errno to set);
    # -fno-trapping-math: so may the selects of the float tanh (as torch's
    # own build); -fopenmp-simd: the loops' "omp simd" pragmas, no OpenMP
    # runtime
    compile_args += ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]

setup(
    ext_modules=[
        Extension(
            "skmdn._cmixture",
            sources=["skmdn/_cmixture.c"],
            depends=["skmdn/_cmixture_kernel.h", "skmdn/_cmixture_block.h"],
            define_macros=macros,
            libraries=libraries,
            extra_compile_args=compile_args,
            optional=True,
        )
    ]
)
