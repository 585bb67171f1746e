"""Finding the App to run: a built-in name, ``package.module:attribute`` or ``file.py:attribute``.

The attribute defaults to ``app``. A name that cannot be loaded raises ``ConfigError`` saying
what was tried and which built-in names exist. It sits above the apps it loads (with the command
line, which is its one user), so that nothing in the daemon layer imports an app.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from residentd.app import App
from residentd.apps import BUILTIN
from residentd.errors import ConfigError


def load_app(spec: str) -> App:
    target = BUILTIN.get(spec, spec)
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    try:
        if module_name.endswith(".py"):
            module = _load_file(module_name)
        else:
            module = importlib.import_module(module_name)
    except (ImportError, FileNotFoundError) as exc:
        builtins = ", ".join(sorted(BUILTIN))
        raise ConfigError(
            f"cannot load app {spec!r}: {exc}; built-in apps: {builtins}; "
            "or give module:attribute or file.py:attribute"
        ) from None
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise ConfigError(f"{module_name}:{attribute} is not a residentd App")
    return app


def _load_file(path: str) -> object:
    if not os.path.exists(path):
        raise FileNotFoundError(f"no file {path}")
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
