"""C speedups, built when a compiler is at hand; residentd runs without them (pure Python and
hiredis), only slower. Everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "residentd.codecs._resp_reader",
            ["src/residentd/codecs/_resp_reader.c"],
            optional=True,
        ),
        Extension(
            "residentd.apps.kv._fastpath",
            ["src/residentd/apps/kv/_fastpath.c"],
            optional=True,
        ),
    ]
)
