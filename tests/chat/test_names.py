"""The name rules as properties (hypothesis): whatever text a client sends as a user name, a room
name or a state key, the server takes it exactly when docs/chat-protocol.md says it may, that is
when every character is an ASCII letter, a digit, ``_``, ``.`` or ``-`` and there are 1 to 32 of
them (64 for keys). The oracle below is written apart from the server's patterns, character by
character. Texts come from all of Unicode, control characters, lookalikes of ASCII letters and
valid names with one character changed; each is sent both as UTF-8 and as JSON escapes. The
same rule guards ``residentd chat token`` and the ``rooms`` option (``is_name``), and the backend
API's names in paths (``is_user``, ``is_key``).
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from residentd.apps.chat import build_app
from residentd.apps.chat import protocol as p
from residentd.apps.chat.names import (
    GUEST_RULE,
    KEY_RULE,
    ROOM_RULE,
    guest_name,
    is_key,
    is_name,
    is_user,
)
from residentd.apps.chat.settings import ChatSettings
from residentd.daemon.config import Schema
from residentd.errors import ConfigError
from residentd.settings import build

ALLOWED = frozenset(string.ascii_letters + string.digits + "_.-")


def documented(text: str, longest: int = 32) -> bool:
    """The rule as the doc states it."""
    return 1 <= len(text) <= longest and all(char in ALLOWED for char in text)


# Lookalikes and troublemakers: Cyrillic and Greek letters that look Latin, fullwidth forms,
# the Kelvin and Angstrom signs, dotless i, zero-width and bidi controls, line ends, NUL, DEL.
CONFUSABLES = (
    "\u042c\u0405\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0501\u0261"
    "\u0391\u0392\u0395\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a7\u03bf\uff42\uff4f"
    "\u2160\u212a\u212b\u0131\u200b\u200c\u200d\u202e\u2060\ufeff"
)
CONTROLS = "".join(map(chr, range(32))) + "\x7f\x85\u2028\u2029"
valid = st.text(alphabet=sorted(ALLOWED), min_size=1, max_size=32)


@st.composite
def altered(draw: st.DrawFn) -> str:
    """A valid name with one character put in, or swapped for, one of the troublemakers."""
    name = draw(valid)
    odd = draw(st.sampled_from(CONFUSABLES + CONTROLS + ' ~"\\/:@#+'))
    where = draw(st.integers(0, len(name)))
    replace = draw(st.booleans())
    return name[:where] + odd + name[where + replace :]


names = st.one_of(
    valid,
    altered(),
    st.text(max_size=40),  # any Unicode, lone surrogates aside (tested on their own below)
    st.text(alphabet=st.characters(max_codepoint=127), max_size=40),  # ASCII, controls too
    valid.map(lambda name: name + "\n"),
)


def decodes(message: Mapping[str, object], escaped: bool) -> tuple[bool, str]:
    """Send ``message`` through the protocol's decoder: accepted, or the error's detail."""
    data = json.dumps(message, ensure_ascii=escaped).encode()
    try:
        p.decode_request(data)
    except p.BadRequest as error:
        return False, error.detail
    return True, ""


@settings(max_examples=400)
@given(names, st.booleans())
@example("bob\n", False)
@example("\u042cob", False)
@example("\u042cob", True)
@example("b" * 33, False)
@example("", False)
def test_user_names(name: str, escaped: bool) -> None:
    accepted, detail = decodes({"op": "hello", "v": 1, "user": name}, escaped)
    plain = name.removeprefix("~")
    assert accepted == documented(plain), (name, detail)
    if not accepted:
        assert detail == GUEST_RULE
    assert is_name(name) == documented(name)
    assert is_user(name) == accepted  # the backend API's check of a user in a path
    if accepted:
        assert guest_name(name) == "~" + plain


@settings(max_examples=300)
@given(names, st.booleans())
def test_room_names(name: str, escaped: bool) -> None:
    for message in (
        {"op": "join", "room": name},
        {"op": "create", "room": name},
        {"op": "post", "room": name, "text": "hi"},
    ):
        accepted, detail = decodes(message, escaped)
        assert accepted == documented(name), (message, detail)
        if not accepted:
            assert detail == ROOM_RULE


@settings(max_examples=300)
@given(st.one_of(names, st.text(alphabet=sorted(ALLOWED), min_size=30, max_size=70)), st.booleans())
def test_state_keys(key: str, escaped: bool) -> None:
    accepted, detail = decodes({"op": "state.set", "key": key, "value": 1}, escaped)
    assert accepted == documented(key, 64), (key, detail)
    assert is_key(key) == accepted
    if not accepted:
        assert detail == KEY_RULE


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=4))
def test_the_rooms_option(rooms: list[str]) -> None:
    schema = Schema(build_app())
    if all(documented(room) for room in rooms):
        config = schema.resolve(None, {}, {"rooms": rooms})
        assert build(ChatSettings, config.app_options()).rooms == rooms
        return
    with pytest.raises(ConfigError) as refused:
        schema.resolve(None, {}, {"rooms": rooms})
    bad = next(room for room in rooms if not documented(room))
    assert repr(bad) in str(refused.value) and ROOM_RULE in str(refused.value)


def test_lone_surrogates_are_no_name() -> None:
    for user in ('"\\ud800bob"', '"bob\\udfff"'):
        accepted, _ = decodes_raw(b'{"op":"hello","v":1,"user":' + user.encode() + b"}")
        assert not accepted, user


def decodes_raw(data: bytes) -> tuple[bool, str]:
    try:
        p.decode_request(data)
    except p.BadRequest as error:
        return False, error.detail
    return True, ""


def test_the_origins_option() -> None:
    schema = Schema(build_app())
    good = ["*", "https://chat.example.com", "http://127.0.0.1:8080", "http://[::1]:7780"]
    assert schema.resolve(None, {}, {"origins": good}).app_options()["origins"] == good
    for bad in ("chat.example.com", "https://chat.example.com/", "https://Chat.example.com"):
        with pytest.raises(ConfigError) as refused:
            schema.resolve(None, {}, {"origins": ["https://ok.example", bad]})
        assert f"{bad!r}: an origin is scheme://host[:port]" in str(refused.value)
