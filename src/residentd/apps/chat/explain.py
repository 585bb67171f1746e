"""Error details for people: a request that did not decode, explained in one sentence.

msgspec says why a message does not fit its struct in its own terms (``Expected `str` matching
regex '^[A-Za-z0-9_.-]+(?![\\s\\S])' - at `$.user```). ``explain`` turns that into the chat's
error code and a detail a person can act on: the field's rule (``user names are 1-32 ASCII
letters, digits, _ . -``), the type it must have (``room must be a string, not a number``), the
field that is missing. The rules come from ``protocol.py``, next to the types they describe; a
message this module does not know keeps msgspec's words, after the field's name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from residentd.apps.chat.errors import ErrorCode

# "<what> - at `$.field`": msgspec's shape; the path is left out for the whole message.
# A map's key is "- at `key` in `$.field`".
_SHAPE = re.compile(
    r"(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?:\.(?P<field>[^`]*))?`)?", re.DOTALL
)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]*)`")
_WRONG_TYPE = re.compile(r"Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")
_UNKNOWN = re.compile(r"Invalid value '(?P<value>.*)'", re.DOTALL)

_TYPES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "an array",
}


def _kind(expected: str) -> str:
    """``int | str | null`` as ``an integer, a string or null``."""
    words = [_TYPES.get(part.strip(), part.strip()) for part in expected.split("|")]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _got(kind: str) -> str:
    """What the message had, in JSON's words: any number is ``a number``."""
    return "a number" if kind in ("int", "float") else _kind(kind)


def explain(
    message: str, op: str | None, rules: Mapping[str, str], whole: str = "a message"
) -> tuple[ErrorCode, str]:
    """The error code and detail of msgspec's validation ``message`` about a request whose
    ``op`` (when it could be read) is ``op``; ``rules`` maps ``field`` or ``op.field`` to the
    sentence that states its rule (``field[key]`` of a map's keys, and the last name of a
    nested field as well); ``whole`` is what the decoded text is called (the backend
    API's is ``the body``)."""
    shape = _SHAPE.fullmatch(message)
    assert shape is not None  # the pattern matches any text
    what, field = shape["what"], shape["field"]
    missing = _MISSING.fullmatch(what)
    if missing:
        name = missing["field"]
        if name == "op":
            return ErrorCode.MISSING_FIELD, "a request needs an op"
        return ErrorCode.MISSING_FIELD, f"{op} needs {name}" if op else f"{name} is missing"
    wrong = _WRONG_TYPE.fullmatch(what)
    if field is None:
        got = wrong["got"] if wrong else "something else"
        return ErrorCode.NOT_AN_OBJECT, f"{whole} is a JSON object, not {_got(got)}"
    if field == "op":
        unknown = _UNKNOWN.fullmatch(what)
        if unknown:
            value = unknown["value"]  # echoed, so cut short: it may be as long as a message
            shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
            return ErrorCode.UNKNOWN_OP, f"no request has op {shown}"
        return ErrorCode.WRONG_TYPE, "op must be a string"
    if wrong:
        expected, got = _kind(wrong["expected"]), _got(wrong["got"])
        return ErrorCode.WRONG_TYPE, f"{field} must be {expected}, not {got}"
    code = ErrorCode.TOO_LONG if "of length <=" in what else ErrorCode.INVALID_VALUE
    if shape["key"]:
        field += "[key]"
    leaf = field.rsplit(".", 1)[-1]  # ``resume[...].seq``: the rule of ``seq``
    rule = rules.get(f"{op}.{field}") or rules.get(field) or rules.get(leaf)
    return code, rule if rule else f"{field}: {what}"
