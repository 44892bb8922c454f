"""The compiled parts of the pure core, each beside the Python that stays its reference.

Built when the package is installed (Cython comes from the build
requirements; a C compiler must be on the machine).  They are optional: where
one does not build, the install goes on and the pure-Python code runs, with
the same results, only slower.  Everything else is declared in pyproject.toml.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = [
    Extension("stream_app.core.signals._frequency_drop",
              ["stream_app/core/signals/_frequency_drop.pyx"], optional=True),
]

setup(ext_modules=cythonize(KERNELS, language_level=3, quiet=True))
