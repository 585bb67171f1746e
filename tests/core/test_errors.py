"""Every exception class residentd defines derives from ``ResidentdError``, and the core's
close codes are one ``StrEnum`` whose values are the kebab-case strings seen on the wire."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import residentd
from residentd.errors import CloseCode, ProtocolErrorCode, ResidentdError


def _modules() -> list[ModuleType]:
    found = [residentd]
    for info in pkgutil.walk_packages(residentd.__path__, "residentd."):
        if info.name.endswith("__main__"):
            continue  # running it is the command line
        found.append(importlib.import_module(info.name))
    return found


def test_every_exception_class_derives_from_residentd_error() -> None:
    classes = {
        f"{module.__name__}.{name}": value
        for module in _modules()
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    }
    assert len(classes) > 20  # the walk found the package's modules, apps included
    strays = sorted(
        name for name, value in classes.items() if not issubclass(value, ResidentdError)
    )
    assert strays == []


def test_exceptions_that_are_also_builtin_kinds_stay_so() -> None:
    """Callers catch some as the built-in kind they were before: that still works."""
    from residentd.apps.kv.persistence.rdb import RdbError
    from residentd.bots.transports import ConnectionClosed
    from residentd.libevent.errors import UnwatchableFileError

    assert issubclass(RdbError, ValueError)
    assert issubclass(ConnectionClosed, ConnectionError)
    assert issubclass(UnwatchableFileError, PermissionError)


def test_close_codes_are_their_wire_strings() -> None:
    assert CloseCode.IDLE_TIMEOUT == "idle-timeout"
    assert f"{CloseCode.SERVER_SHUTDOWN}" == "server-shutdown"
    assert {code: 1 for code in CloseCode}["closed-by-peer"] == 1
    for code in CloseCode:
        assert code.value == code.name.lower().replace("_", "-")


def test_every_close_code_is_documented_in_the_protocol_table() -> None:
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    missing = [code.value for code in CloseCode if f"| `{code.value}` |" not in text]
    assert missing == []


def test_every_codec_error_code_is_its_wire_string_and_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    for code in ProtocolErrorCode:
        assert code.value == code.name.lower().replace("_", "-")
    missing = [code.value for code in ProtocolErrorCode if f"| `{code.value}` |" not in text]
    assert missing == []


def test_no_module_of_the_package_raises_a_protocol_error_with_a_free_string() -> None:
    # Codes are enum members (CloseCode, ProtocolErrorCode), not strings spread over files;
    # apps keep their own codes (chat's ErrorCode, kv's Redis texts).
    root = Path(residentd.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        if "apps" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "ProtocolError"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
