"""Build the optional C accelerator; if it cannot be compiled, lossdx still installs and uses numpy."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as err:  # no compiler: the pure-numpy path is used
            print(f"lossdx: C accelerator not built ({err}); falling back to numpy")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as err:
            print(f"lossdx: C accelerator {ext.name} not built ({err}); falling back to numpy")


setup(
    ext_modules=[Extension("lossdx._fastcsv", ["src/lossdx/_ext/fastcsv.c"], extra_compile_args=["-O3"],
                           optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
)
