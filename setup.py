"""Build the compiled kernels; everything else is declared in pyproject.toml."""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = {
    "tcpsift.capture._records": "src/tcpsift/capture/_records.pyx",
    "tcpsift.capture._arrow": "src/tcpsift/capture/_arrow.pyx",
    "tcpsift.compare._points": "src/tcpsift/compare/_points.pyx",
    "tcpsift.decode._decode": "src/tcpsift/decode/_decode.pyx",
    "tcpsift.tcp._analysis": "src/tcpsift/tcp/_analysis.pyx",
    "tcpsift.textstream._lines": "src/tcpsift/textstream/_lines.pyx",
}

extensions = [
    Extension(name, [path], include_dirs=[numpy.get_include()],
              extra_compile_args=["-O3"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    for name, path in KERNELS.items()
]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False,
                                                 "cdivision": True, "initializedcheck": False}))
