"""The compiled parts of the pure core, each beside the Python that stays its reference.

Built when the package is installed (Cython comes from the build
requirements; a C compiler must be on the machine).  They are optional: where
one does not build (no compiler, no Cython), the install goes on and the
pure-Python code runs, with the same results, only slower.  Everything else
is declared in pyproject.toml.
"""

from __future__ import annotations

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: Every one optional: each has a pure-Python reference that runs where it is not built.
KERNELS = [
    Extension("stream_app.core.signals._frequency_drop",
              ["stream_app/core/signals/_frequency_drop.pyx"]),
]


class BuildWhatCompiles(build_ext):
    """Every kernel that compiles; one that does not leaves its Python reference to run.

    Not setuptools' own ``optional``: cythonize() does not carry it over to
    the extensions it returns, and it lets a compiler's error pass but not a
    missing compiler.
    """

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self.warn(f"{ext.name} was not compiled ({exc}); "
                      "its pure-Python reference runs instead")


try:
    from Cython.Build import cythonize
except ImportError:  # built without the build requirements (--no-build-isolation)
    print("warning: Cython is not installed: nothing is compiled, the pure-Python "
          "reference runs")
    ext_modules: list[Extension] = []
else:
    ext_modules = cythonize(KERNELS, language_level=3, quiet=True)

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildWhatCompiles})
