"""Names: what a user name, a guest's name, a room name and a state key may be.

One alphabet for all of them: ASCII letters, digits, ``_``, ``.`` and ``-``, checked against the
whole string. Both halves matter: ``\\w`` would let in the letters of every script, and with
them lookalikes of ASCII names (a Cyrillic soft sign for a ``b``); a pattern anchored with ``$``
would let a final newline through (``"bob\\n"`` as a second ``bob``). The patterns here spell
the class out and end in ``END``, a lookahead that no character follows: the end of the text in
Python's ``re`` and in ECMA-262 (the dialect of JSON Schema, so of the API's OpenAPI document,
and of the page's JavaScript) alike, where ``\\Z`` is Python's alone (ECMA-262 reads it as a
``Z``).

Guests live in a namespace of their own: a guest's name is ``~`` and a user name, so no guest
can ever hold, or pass for, the plain name of a user who signs in with a token.

The ``*_RULE`` sentences are what error details and the CLI tell people; docs/chat-protocol.md
states the same rules.
"""

from __future__ import annotations

import re

CHARS = "A-Za-z0-9_.-"
GUEST_MARK = "~"
NAME_MAX = 32
KEY_MAX = 64

# Patterns for msgspec and the OpenAPI document (both search, so they are anchored at both ends);
# lengths are checked apart, by ``min_length``/``max_length``, so an over-long name is
# ``too-long``.
END = r"(?![\s\S])"
NAME_PATTERN = rf"^[{CHARS}]+{END}"
USER_PATTERN = rf"^{GUEST_MARK}?[{CHARS}]{{1,{NAME_MAX}}}{END}"

USER_RULE = f"user names are 1-{NAME_MAX} ASCII letters, digits, _ . -"
GUEST_RULE = f"{USER_RULE} (a guest's with {GUEST_MARK} in front)"
ROOM_RULE = f"room names are 1-{NAME_MAX} ASCII letters, digits, _ . -"
KEY_RULE = f"state keys are 1-{KEY_MAX} ASCII letters, digits, _ . -"

_NAME = re.compile(f"[{CHARS}]{{1,{NAME_MAX}}}")
_USER = re.compile(f"{GUEST_MARK}?[{CHARS}]{{1,{NAME_MAX}}}")
_KEY = re.compile(f"[{CHARS}]{{1,{KEY_MAX}}}")


def is_name(text: str) -> bool:
    """Is ``text`` a user name or a room name (a guest's ``~`` name is not)?"""
    return _NAME.fullmatch(text) is not None


def is_user(text: str) -> bool:
    """Is ``text`` a user name or a guest's ``~`` name?"""
    return _USER.fullmatch(text) is not None


def is_key(text: str) -> bool:
    """Is ``text`` a state key?"""
    return _KEY.fullmatch(text) is not None


def is_guest(name: str) -> bool:
    return name.startswith(GUEST_MARK)


def guest_name(asked: str) -> str:
    """The name a guest who asked for ``asked`` (``ann`` or ``~ann``) signs in as: ``~ann``."""
    return asked if is_guest(asked) else GUEST_MARK + asked
