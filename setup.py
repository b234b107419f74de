"""Build the compiled kernels; everything else is declared in pyproject.toml."""
import sys

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

# The decoder's generated Cython includes (decode/_columns.pxi, _constants.pxi) are
# checked in; written again here when tcpsift.decode.columns has changed since.
sys.path.insert(0, "src")
from tcpsift.decode import columns  # noqa: E402

for path in columns.write():
    print(f"setup.py: wrote {path}, generated from tcpsift.decode.columns")
sys.path.pop(0)

extensions = [
    Extension(name, [path], include_dirs=[numpy.get_include()],
              extra_compile_args=["-O3"],
              define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])
    for name, path in KERNELS.items()
]

setup(ext_modules=cythonize(extensions, language_level=3,
                            compiler_directives={"boundscheck": False, "wraparound": False,
                                                 "cdivision": True, "initializedcheck": False}))
