"""C speedups, built when a compiler is at hand; residentd runs without them (pure Python and
hiredis), only slower. Everything else about the package is in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

HEADERS = sorted(str(path) for path in Path("src/residentd").rglob("*.h"))


def speedup(module: str) -> Extension:
    """The optional extension ``module``, built from the C file of the same path under src/."""
    source = "src/" + module.replace(".", "/") + ".c"
    return Extension(module, [source], depends=HEADERS, optional=True)


setup(
    ext_modules=[
        speedup("residentd.codecs._lines"),
        speedup("residentd.codecs._resp_reader"),
        speedup("residentd.codecs._http_head"),
        speedup("residentd.net._connection_core"),
        speedup("residentd.apps.kv._fastpath"),
        speedup("residentd.apps.kv._hyperloglog"),
        speedup("residentd.apps.kv._zorder"),
    ]
)
