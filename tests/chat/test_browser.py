"""The chat page and the dashboard in headless Chromium, against a real ``residentd run chat``.

One daemon and two browsers (ann and bob) serve the whole module, and the tests run in file
order as one story: two people chat, write to each other directly, meet in a private room,
scroll back through a long history, lay the page out at 360 and 1280 px, live through a
daemon restart, and finally ann sits in a room where 300 bots post while her page's own
requests are counted at ``WebSocket.send`` (a hook the test installs before the page loads).
After the story, a backend signs its user in through the URL fragment with a token from the
API, and the OpenAPI document's name patterns are run by the browser's own (ECMA-262) regular
expressions.

Driven with Selenium and Debian's ``chromium`` + ``chromium-driver`` (same version by
construction); skipped, saying why, when either is missing. Screenshots go to pytest's
``tmp_path``, or to ``$RESIDENTD_SCREENSHOTS`` when set.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from residentd.apps.chat.tokens import make_token

from .daemon import ChatDaemon
from .durable import Client
from .test_api import name_schemas
from .test_names import CONFUSABLES, CONTROLS

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [
    pytest.mark.same_either_way,
    pytest.mark.chromium,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium "
        "chromium-driver)",
    ),
]

from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
]
WAIT = 15.0
MAX_MESSAGES = 200  # chat.js keeps at most this many messages in the DOM
SECRET = "browser-test-secret"
API_KEY = "browser-test-api-key-0123"

# Installed before any page script runs: every frame the page sends is logged with its time,
# and the messages it receives are counted by op.
HOOK = """
window.__sent = [];
window.__received = {};
window.__limited = [];
window.__sockets = [];
// Each socket's listener goes first, before the page's onmessage: an error is recorded before
// the page can answer it by sending.
window.WebSocket = class extends WebSocket {
  constructor(...args) {
    super(...args);
    window.__sockets.push(this);
    this.addEventListener("message", (event) => {
      const got = JSON.parse(event.data);
      window.__received[got.op] = (window.__received[got.op] || 0) + 1;
      if (got.code === "rate-limited") window.__limited.push([performance.now(), got.retry_after]);
    });
  }
};
const originalSend = WebSocket.prototype.send;
WebSocket.prototype.send = function (data) {
  let op = "?";
  try { op = JSON.parse(data).op; } catch (error) {}
  window.__sent.push([performance.now(), op]);
  return originalSend.call(this, data);
};
"""


def browser() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK})
    return driver


@pytest.fixture(scope="module")
def daemon() -> Iterator[ChatDaemon]:
    with ChatDaemon("--history-size", "300", "--secret", SECRET, "--api-keys", API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def ann() -> Iterator[Any]:
    driver = browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def bob() -> Iterator[Any]:
    driver = browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("RESIDENTD_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Peer:
    """A signed-in user of the daemon's TCP port (JSON lines), for what the test needs done
    around the browsers."""

    def __init__(self, daemon: ChatDaemon, user: str, **hello: Any) -> None:
        self.sock = socket.create_connection(("127.0.0.1", daemon.tcp_port), timeout=WAIT)
        self.file = self.sock.makefile("rb")
        self.next_id = 0
        reply = self.call("hello", v=1, user=user, **hello)
        self.user: str = reply.get("user", "")  # "": the hello was refused

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        self.sock.sendall(json.dumps({"op": op, "id": self.next_id, **fields}).encode() + b"\n")
        while True:
            message: dict[str, Any] = json.loads(self.file.readline())
            if message.get("id") == self.next_id:
                return message

    def close(self) -> None:
        self.file.close()
        self.sock.close()


# -- helpers ------------------------------------------------------------------------------------


def until(driver: Any, condition: Callable[[Any], Any], what: str, wait: float = WAIT) -> Any:
    """Wait for ``condition``; the lists are redrawn as pushes come, so an element the
    condition found may be replaced while it reads it: then it is asked again."""
    wait_for = WebDriverWait(driver, wait, ignored_exceptions=(StaleElementReferenceException,))
    return wait_for.until(lambda d: condition(d), message=what)


def by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element(By.ID, element_id)


def text_of(driver: Any, element_id: str) -> str:
    return str(by_id(driver, element_id).text)


# The name each user got: a guest asking for "ann" is "~ann" (docs/chat-protocol.md, Guests).
NAMES: dict[str, str] = {}


def signed_in_as(driver: Any) -> str | None:
    found = re.fullmatch(r"signed in as (\S+)( \(guest\))?", text_of(driver, "status"))
    return found[1] if found else None


def sign_in(driver: Any, url: str, name: str) -> None:
    driver.get(url + "/")
    by_id(driver, "name").send_keys(name, Keys.ENTER)  # the keyboard, as a person would
    until(driver, signed_in_as, f"{name} signed in")
    NAMES[name] = str(signed_in_as(driver))
    assert NAMES[name].lstrip("~") == name
    until(driver, lambda d: text_of(d, "room-title") == "lobby", f"{name} in the lobby")


def n(name: str) -> str:
    return NAMES[name]


def member_class(driver: Any, user: str) -> str | None:
    return driver.execute_script(
        "const li = [...document.querySelectorAll('#members li')]"
        ".find((li) => li.dataset.user === arguments[0]); return li ? li.className : null",
        user,
    )


def messages(driver: Any) -> list[str]:
    """The messages shown, as "who text" (the time left out), read in one go."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#messages li.message')].map((li) =>"
        " li.querySelector('.who').textContent + ' ' + li.querySelector('.text').textContent)"
    )


def write(driver: Any, text: str) -> None:
    box = by_id(driver, "text")
    box.send_keys(text, Keys.ENTER)


def shows(driver: Any, line: str) -> bool:
    return line in messages(driver)


def room_button(driver: Any, room: str) -> Any:
    found = driver.find_elements(By.CSS_SELECTOR, f'#rooms button[data-room="{room}"]')
    return found[0] if found else None


def click(driver: Any, selector: str) -> None:
    """Click what the selector finds; the lists are redrawn as pushes come, so a button found
    may be replaced before the click lands: find it again."""

    def clicked(d: Any) -> bool:
        try:
            d.find_element(By.CSS_SELECTOR, selector).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    until(driver, clicked, f"click {selector}")


def open_room(driver: Any, room: str) -> None:
    click(driver, f'#rooms button[data-room="{room}"]')
    until(driver, lambda d: text_of(d, "room-title") == room, f"in {room}")


def unread(driver: Any, selector: str) -> int:
    found = driver.execute_script(
        "const u = document.querySelector(arguments[0]); return u ? u.textContent : '0'",
        f"{selector} .unread",
    )
    return int(found)


def refocus(driver: Any) -> bool:
    """The window gets the focus back, as when a person returns to the tab."""
    driver.execute_script("window.dispatchEvent(new Event('focus'))")
    return True


def sent(driver: Any) -> list[tuple[float, str]]:
    return [(t, op) for t, op in driver.execute_script("return window.__sent")]


def requests_since(driver: Any, start: float) -> list[str]:
    return [op for t, op in sent(driver) if t >= start]


def now(driver: Any) -> float:
    return float(driver.execute_script("return performance.now()"))


def emulate(driver: Any, width: int, height: int, scale: float = 1) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": width < 600},
    )


# Every visible element's box: page-level ones must lie inside the viewport; ones inside a
# scrolling list must lie inside that list's width. Also the page itself must not scroll.
LAYOUT = """
const width = window.innerWidth, height = window.innerHeight;
const bad = [];
let shown = 0;
for (const node of document.body.querySelectorAll("*")) {
  const box = node.getBoundingClientRect();
  const style = getComputedStyle(node);
  if (!box.width || !box.height || style.visibility === "hidden") continue;
  if (node.closest("script")) continue;
  shown += 1;
  const scroller = node.parentElement.closest(".scroller, .panel");
  const frame = scroller ? scroller.getBoundingClientRect()
    : {left: 0, right: width, top: 0, bottom: height};
  const vertical = scroller || arguments[0] ? true : box.top >= -1 && box.bottom <= height + 1;
  if (box.left < frame.left - 1 || box.right > frame.right + 1 || !vertical) {
    bad.push(`${node.tagName}#${node.id}.${node.className} ${JSON.stringify(box)}`);
  }
}
const page = document.documentElement;
return {shown, bad, scrollWidth: page.scrollWidth, scrollHeight: page.scrollHeight,
        width, height};
"""


def check_layout(driver: Any, where: str, scrolls_down: bool = False) -> None:
    found = driver.execute_script(LAYOUT, scrolls_down)
    assert found["shown"] > 10, f"{where}: the page is (nearly) empty"
    assert not found["bad"], f"{where}: boxes outside the viewport: {found['bad'][:5]}"
    assert found["scrollWidth"] <= found["width"], f"{where}: the page scrolls sideways"
    if not scrolls_down:
        assert found["scrollHeight"] <= found["height"], f"{where}: the page scrolls down"


def no_console_errors(driver: Any) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    # A WebSocket refused while the daemon restarts is the browser's own report, not the page's.
    errors = [e for e in errors if "WebSocket connection" not in e["message"]]
    assert not errors, f"errors in the console (CSP included): {errors}"


# -- the story ----------------------------------------------------------------------------------


def test_two_users_chat_and_see_presence(daemon: ChatDaemon, ann: Any, bob: Any) -> None:
    sign_in(ann, daemon.url, "ann")
    sign_in(bob, daemon.url, "bob")
    until(ann, lambda d: member_class(d, n("bob")) == "online", "ann sees bob online")
    until(bob, lambda d: member_class(d, n("ann")) == "online", "bob sees ann online")
    write(ann, "hello bob")
    until(bob, lambda d: shows(d, f"{n('ann')} hello bob"), "bob reads ann")
    assert by_id(ann, "text").get_attribute("value") == "", "a sent message leaves the box"
    write(bob, "hi ann")
    until(ann, lambda d: shows(d, f"{n('bob')} hi ann"), "ann reads bob")
    assert messages(ann) == messages(bob) == [f"{n('ann')} hello bob", f"{n('bob')} hi ann"]
    # A room made by bob shows in ann's list, without ann reloading anything.
    by_id(bob, "new-room").send_keys("games", Keys.ENTER)
    until(bob, lambda d: text_of(d, "room-title") == "games", "bob is in his new room")
    # Read through until: the list is redrawn as pushes come (the new room's own, say).
    until(
        bob,
        lambda d: room_button(d, "games").get_attribute("aria-current") == "true",
        "bob's new room is the current one in his list",
    )
    until(ann, lambda d: refocus(d) and room_button(d, "games"), "ann's list shows games")
    no_console_errors(ann)


def test_unread_counts_and_direct_messages(daemon: ChatDaemon, ann: Any, bob: Any) -> None:
    # bob is in "games"; ann's lobby messages count as unread on bob's page.
    open_room(bob, "lobby")
    open_room(bob, "games")
    write(ann, "one")
    write(ann, "two")
    until(bob, lambda d: unread(d, '#rooms button[data-room="lobby"]') == 2, "2 unread in lobby")
    assert bob.title == "(2) residentd chat", "and in the tab's title"
    # A direct message is started by clicking the person, and has its own conversation.
    click(ann, f'#members li[data-user="{n("bob")}"] button')
    until(ann, lambda d: text_of(d, "room-title") == n("bob"), "ann's conversation with bob")
    assert by_id(ann, "text") == ann.switch_to.active_element, "the box has the focus"
    write(ann, "just you and me")
    until(ann, lambda d: shows(d, f"{n('ann')} just you and me"), "ann sees her direct message")
    until(
        bob,
        lambda d: unread(d, f'#directs button[data-direct="{n("ann")}"]') == 1,
        "bob: 1 from ann",
    )
    assert not shows(bob, f"{n('ann')} just you and me"), "not in the room bob is reading"
    click(bob, f'#directs button[data-direct="{n("ann")}"]')
    until(
        bob, lambda d: shows(d, f"{n('ann')} just you and me"), "bob reads it in its conversation"
    )
    write(bob, "sure")
    until(ann, lambda d: shows(d, f"{n('bob')} sure"), "ann reads the answer")
    assert messages(ann) == messages(bob) == [f"{n('ann')} just you and me", f"{n('bob')} sure"]
    # A send that fails says why next to the box, and keeps the draft.
    carol = Peer(daemon, "carol")
    assert carol.call("join", room="lobby")["op"] == "join"
    click(ann, '#rooms button[data-room="lobby"]')
    until(ann, lambda d: member_class(d, carol.user) == "online", "ann sees carol")
    click(ann, f'#members li[data-user="{carol.user}"] button')
    until(ann, lambda d: text_of(d, "room-title") == carol.user, "ann writes to carol")
    carol.close()
    click(ann, '#rooms button[data-room="lobby"]')
    until(ann, lambda d: member_class(d, carol.user) in (None, "offline"), "carol is gone")
    click(ann, f'#directs button[data-direct="{carol.user}"]')
    write(ann, "are you there?")
    until(ann, lambda d: "offline" in text_of(d, "compose-error"), "the error, in words")
    assert "kept" in text_of(ann, "compose-error")
    assert by_id(ann, "text").get_attribute("value") == "are you there?", "the draft is kept"
    by_id(ann, "text").clear()
    no_console_errors(bob)


def test_private_room_and_invite(daemon: ChatDaemon, ann: Any, bob: Any) -> None:
    by_id(ann, "new-room").send_keys("plans")
    by_id(ann, "new-private").click()
    by_id(ann, "new-room").send_keys(Keys.ENTER)
    until(ann, lambda d: text_of(d, "room-title") == "plans", "ann in her private room")
    # The marker is a word, not a glyph the fonts may lack.
    until(
        ann,
        lambda d: room_button(d, "plans").find_element(By.CLASS_NAME, "badge").text == "private",
        "the private marker",
    )
    write(ann, "secret plan")
    until(ann, lambda d: shows(d, f"{n('ann')} secret plan"), "posted")
    assert room_button(bob, "plans") is None, "bob does not see a private room"
    invite = by_id(ann, "invite-user")
    invite.send_keys("nobody-here", Keys.ENTER)
    until(ann, lambda d: "does not know" in text_of(d, "invite-error"), "the error, in words")
    invite.clear()
    invite.send_keys(n("bob"), Keys.ENTER)
    until(ann, lambda d: text_of(d, "invite-error") == "", "the error goes")
    until(bob, lambda d: room_button(d, "plans") is not None, "bob is shown the invitation")
    assert "invited" in text_of(bob, "notice")
    click(bob, '#rooms button[data-room="plans"]')
    until(bob, lambda d: shows(d, f"{n('ann')} secret plan"), "bob joins and reads the history")
    until(ann, lambda d: member_class(d, n("bob")) == "online", "ann sees bob in plans")


def test_scroll_back_and_a_bounded_dom(daemon: ChatDaemon, ann: Any) -> None:
    # 260 messages from 13 writers (each within its own rate), kept by --history-size 300.
    writers = [Peer(daemon, f"w{k}") for k in range(13)]
    lines = [f"{writers[k % 13].user} line {k + 1}" for k in range(260)]
    writers[0].call("create", room="long")
    for writer in writers[1:]:
        writer.call("join", room="long")
    for k in range(260):
        reply = writers[k % 13].call("post", room="long", text=lines[k].split(" ", 1)[1])
        assert reply["op"] == "post", reply
    for writer in writers:
        writer.close()
    by_id(ann, "new-room").send_keys("long", Keys.ENTER)
    until(ann, lambda d: "exists" in text_of(d, "create-error"), "room-exists, in words")
    by_id(ann, "new-room").clear()
    until(ann, lambda d: refocus(d) and room_button(d, "long"), "the room list knows long")
    click(ann, '#rooms button[data-room="long"]')
    until(ann, lambda d: messages(d)[-1:] == lines[-1:], "the latest messages")
    assert len(messages(ann)) == 50
    start = now(ann)
    for _ in range(20):
        if by_id(ann, "older").get_attribute("disabled"):
            break
        first = messages(ann)[0]
        ann.execute_script("document.getElementById('scroller').scrollTop = 0")
        until(ann, lambda d: messages(d)[0] != first, "older ones")  # noqa: B023 (called now)
    shown = messages(ann)
    assert len(ann.find_elements(By.CSS_SELECTOR, "#messages li")) <= MAX_MESSAGES
    assert shown == lines[: len(shown)], "back to the first kept message, in order, no gaps"
    assert text_of(ann, "older") == "Start of the kept history"
    history = [op for op in requests_since(ann, start)]
    assert history == ["history"] * len(history) and 4 <= len(history) <= 6
    latest = by_id(ann, "latest")
    assert latest.is_displayed(), "the newest ones fell off the end: a way back to them"
    latest.click()
    until(ann, lambda d: messages(d)[-1:] == lines[-1:], "back at the latest")


@pytest.mark.parametrize(("width", "height"), [(360, 740), (1280, 800)])
def test_layout_at_phone_and_desktop_width(ann: Any, shots: Path, width: int, height: int) -> None:
    emulate(ann, width, height)
    try:
        if width < 600:
            click(ann, '#tabs button[data-panel="sidebar"]')
        click(ann, '#rooms button[data-room="plans"]')
        until(ann, lambda d: shows(d, f"{n('ann')} secret plan"), "in plans")
        panels = ["conversation", "sidebar", "people"] if width < 600 else ["all"]
        for panel in panels:
            if panel != "all":
                click(ann, f'#tabs button[data-panel="{panel}"]')
            shot = shots / f"chat-{width}-{panel}.png"
            ann.save_screenshot(str(shot))
            assert shot.stat().st_size > 5000
            check_layout(ann, f"{width} px, {panel}")
            if panel != "all":  # one panel at a time
                shown = [
                    p for p in ("sidebar", "conversation", "people") if by_id(ann, p).is_displayed()
                ]
                assert shown == [panel]
        if width < 600:
            assert by_id(ann, "tabs").is_displayed()
        else:
            assert not by_id(ann, "tabs").is_displayed()
            for panel in ("sidebar", "conversation", "people"):
                assert by_id(ann, panel).is_displayed()
    finally:
        ann.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_keyboard_only(ann: Any) -> None:
    """Tab reaches every room, person and form; Enter opens a room."""
    body = ann.find_element(By.TAG_NAME, "body")
    body.click()
    reached = []
    for _ in range(60):
        ann.switch_to.active_element.send_keys(Keys.TAB)
        active = ann.switch_to.active_element
        reached.append(active.get_attribute("data-room") or active.get_attribute("id"))
        if active.get_attribute("data-room") == "lobby":
            active.send_keys(Keys.ENTER)
            break
    until(ann, lambda d: text_of(d, "room-title") == "lobby", "Enter on a room opens it")
    assert "lobby" in reached
    assert "create-error" not in [
        e.get_attribute("id")
        for e in ann.find_elements(By.CSS_SELECTOR, ".error")
        if e.is_displayed()
    ]
    roles = {name: by_id(ann, name).get_attribute("role") for name in ("messages", "status")}
    assert roles == {"messages": "log", "status": "status"}
    assert by_id(ann, "sidebar").tag_name == "nav" and by_id(ann, "people").tag_name == "aside"
    until(
        ann,
        lambda d: (
            [
                b.get_attribute("data-room")
                for b in d.find_elements(By.CSS_SELECTOR, '#rooms [aria-current="true"]')
            ]
            == ["lobby"]
        ),
        "the lobby alone is the current room",
    )


def test_reconnect_after_the_daemon_restarts(daemon: ChatDaemon, ann: Any, bob: Any) -> None:
    open_room(bob, "lobby")
    daemon.stop()
    until(ann, lambda d: by_id(d, "connection").is_displayed(), "ann is told")
    assert "Reconnecting" in text_of(ann, "connection-text")
    assert "Reconnecting" in text_of(bob, "connection-text")
    write(ann, "lost words")
    until(ann, lambda d: "connection to the server is down" in text_of(d, "compose-error"), "why")
    assert by_id(ann, "text").get_attribute("value") == "lost words", "the draft is kept"
    daemon.__enter__()  # the same ports
    for driver, name in ((ann, "ann"), (bob, "bob")):
        until(driver, lambda d: not by_id(d, "connection").is_displayed(), f"{name} is back",
              wait=30)  # fmt: skip
        until(driver, lambda d: signed_in_as(d) == n(name), f"{name} signed in")  # noqa: B023
        until(driver, lambda d: text_of(d, "room-title") == "lobby", "the lobby again")
    # The restarted daemon knew neither: both pages joined the lobby again.
    until(ann, lambda d: member_class(d, n("bob")) == "online", "ann sees bob again")
    by_id(ann, "text").send_keys(Keys.ENTER)  # the kept draft, sent again
    until(bob, lambda d: shows(d, f"{n('ann')} lost words"), "bob reads ann after the restart")
    no_console_errors(ann)


def test_a_name_still_held_after_a_drop_is_tried_again(daemon: ChatDaemon, ann: Any) -> None:
    """The page's socket drops, and before it is back the server still holds ann's guest name
    (here: another connection takes it). The page does not give up on `name-taken`: it keeps
    trying with backoff, and signs in once the name is free."""
    ann.execute_script("window.__sockets[window.__sockets.length - 1].close()")
    for _ in range(10):  # once the server has seen the page's socket close
        time.sleep(0.03)
        holder = Peer(daemon, "ann")
        if holder.user == n("ann"):
            break
        holder.close()
    assert holder.user == n("ann")
    start = now(ann)
    until(ann, lambda d: sum(op == "hello" for t, op in sent(d) if t >= start) >= 1,
          "the page tried again")  # fmt: skip
    time.sleep(0.5)
    assert by_id(ann, "connection").is_displayed(), "still reconnecting, not signed out"
    assert not by_id(ann, "signin").is_displayed()
    holder.close()
    until(ann, lambda d: signed_in_as(d) == n("ann"), "signed in once the name is free", wait=30)
    until(ann, lambda d: text_of(d, "room-title") == "lobby", "back in the lobby")


def test_a_rate_limited_post_waits_retry_after_and_goes_through(
    daemon: ChatDaemon, bob: Any
) -> None:
    """dave's other connection spends their shared rate; the page's post is refused with
    `rate-limited`, and the page sends it again only after each `retry_after`, until it passes."""
    click(bob, "#signout")
    until(bob, lambda d: by_id(d, "signin").is_displayed(), "the sign-in form is back")
    by_id(bob, "name").clear()
    by_id(bob, "name").send_keys("dave")
    by_id(bob, "token").send_keys(make_token(SECRET, "eve"), Keys.ENTER)  # not dave's
    until(bob, lambda d: "token was refused" in text_of(d, "signin-error"), "said in words")
    assert by_id(bob, "signin").is_displayed() and not by_id(bob, "connection").is_displayed()
    token = make_token(SECRET, "dave")
    by_id(bob, "token").clear()
    by_id(bob, "token").send_keys(token, Keys.ENTER)
    until(bob, lambda d: signed_in_as(d) == "dave", "dave signed in with a token")
    until(bob, lambda d: text_of(d, "room-title") == "lobby", "dave in the lobby")
    other = Peer(daemon, "dave", token=token)
    stop = threading.Event()

    def spend() -> None:  # the burst at once, then ten times the rate, until told to stop
        line = b'{"op":"rooms"}\n'
        other.sock.sendall(line * 45)
        while not stop.wait(0.005):
            other.sock.sendall(line)

    def limited() -> list[tuple[float, float]]:
        return [(t, after) for t, after in bob.execute_script("return window.__limited")]

    spender = threading.Thread(target=spend)
    spender.start()
    try:
        time.sleep(0.2)
        # A post may still slip into the moment a token comes back (5 ms in every 50): then
        # the next one is refused.
        for attempt in range(5):
            start = now(bob)
            write(bob, f"patience {attempt}")
            time.sleep(1.0)
            if any(t >= start for t, _ in limited()):
                break
    finally:
        stop.set()
        spender.join()
    until(bob, lambda d: shows(d, f"dave patience {attempt}"), "the post went through")
    assert text_of(bob, "compose-error") == ""
    assert by_id(bob, "text").get_attribute("value") == ""
    posts = [t for t, op in sent(bob) if op == "post" and t >= start]
    assert len(posts) >= 2, "refused at least once, then sent again"
    for retry in posts[1:]:
        refused, after = max((t, a) for t, a in limited() if t < retry)
        assert after > 0 and retry >= refused + after * 1000 - 2, "waited retry_after"
    other.close()


@pytest.mark.slow
def test_a_busy_room_does_not_eat_the_pages_rate(
    daemon: ChatDaemon, ann: Any, shots: Path, tmp_path: Path
) -> None:
    """300 bots post in a room ann is in: her page asks the server less than once a second,
    shows at most MAX_MESSAGES messages, counts the unread ones, and her own posts go through
    (the old page sent a `rooms` request per message and was rate-limited within seconds)."""
    by_id(ann, "new-room").send_keys("bot-room-0", Keys.ENTER)
    until(ann, lambda d: text_of(d, "room-title") == "bot-room-0", "ann in the bots' room")
    bots = subprocess.Popen(
        [
            sys.executable, "-m", "residentd", "bots", "--scenario", "chat",
            "--target", f"127.0.0.1:{daemon.tcp_port}", "--users", "300",
            "--spawn-rate", "300", "--duration", "16", "--processes", "1",
            "--set", "room_size=300", "--set", "rooms_per_bot=1", "--max-error-rate", "1",
            "--report", str(tmp_path / "report"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        received = "return window.__received.message || 0"
        ann.execute_script(  # the most items the message list ever holds, from now on
            "window.__most = 0; const list = document.getElementById('messages');"
            "new MutationObserver(() => { window.__most = Math.max(window.__most,"
            " list.children.length); }).observe(list, {childList: true});"
        )
        until(ann, lambda d: d.execute_script(received) > 50, "the bots post", wait=20)
        start, first = now(ann), ann.execute_script(received)
        time.sleep(5)
        counted = re.fullmatch(r"200 of (\d+)", text_of(ann, "members-count"))
        assert counted and int(counted[1]) > 250, "a long member list is cut, saying so"
        open_room(ann, "lobby")
        time.sleep(5)
        assert unread(ann, '#rooms button[data-room="bot-room-0"]') > 20
        write(ann, "busy over there")
        until(ann, lambda d: shows(d, f"{n('ann')} busy over there"), "ann's post in the lobby")
        open_room(ann, "bot-room-0")
        write(ann, "hello bots")
        until(ann, lambda d: shows(d, f"{n('ann')} hello bots"), "ann's post among the bots'")
        assert text_of(ann, "compose-error") == ""
        elapsed = (now(ann) - start) / 1000
        pushed = ann.execute_script(received) - first
        own = [op for op in requests_since(ann, start) if op != "post"]
        assert pushed > 10 * elapsed, f"a busy room: {pushed} messages in {elapsed:.1f} s"
        assert len(own) < elapsed, f"{len(own)} requests in {elapsed:.1f} s: {own}"
        most = ann.execute_script("return window.__most")
        assert MAX_MESSAGES - 10 <= most <= MAX_MESSAGES, f"at most {MAX_MESSAGES}: {most}"
    finally:
        try:
            bots.wait(30)
        except subprocess.TimeoutExpired:
            bots.kill()
            bots.wait()
    assert bots.returncode in (0, 1), bots.stderr.read() if bots.stderr else ""
    no_console_errors(ann)
    # The bots' own HTML report: each legend label is drawn in its line's colour.
    ann.get((tmp_path / "report" / "index.html").as_uri())
    ann.execute_script("document.querySelector('svg').scrollIntoView()")
    ann.save_screenshot(str(shots / "bots-report.png"))
    charts = ann.execute_script(
        "return [...document.querySelectorAll('svg')].map((svg) => ["
        " [...svg.querySelectorAll('polyline')].map((p) => getComputedStyle(p).stroke),"
        " [...svg.querySelectorAll('text.legend')].map((t) => getComputedStyle(t).fill)])"
    )
    assert any(len(lines) > 1 for lines, _ in charts), "some chart has several lines"
    for lines, labels in charts:
        assert labels == lines, "legend colours are the lines' colours"


def test_dashboard(daemon: ChatDaemon, bob: Any, shots: Path) -> None:
    emulate(bob, 1280, 900, scale=2)
    try:
        bob.get(daemon.url + "/dashboard")
        body = bob.find_element(By.TAG_NAME, "body")
        until(bob, lambda d: int(body.get_attribute("data-samples") or 0) >= 2, "samples")
        assert "updated" in text_of(bob, "status")
        canvas = by_id(bob, "chart-online")
        width, css_width = bob.execute_script(
            "const c = arguments[0]; return [c.width, c.clientWidth]", canvas
        )
        assert width == 2 * css_width, "drawn at the device's pixel ratio"
        ticks = json.loads(canvas.get_attribute("data-ticks"))
        steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1 and ticks[0] == 0, f"even ticks from 0: {ticks}"
        # The bots were online (300 of them) in the last two minutes: memory per user shows
        # for those seconds, its axis in one unit ("0 B, 1000 B, 2 KiB" was the old one).
        labels = json.loads(by_id(bob, "chart-memory").get_attribute("data-labels"))
        assert len(labels) >= 2 and len({label.split()[-1] for label in labels}) == 1, labels
        swatches = bob.execute_script(
            "return [...document.querySelectorAll('#legend-online li')].map("
            "(li) => getComputedStyle(li, '::before').backgroundColor)"
        )
        assert len(swatches) == 3 and len(set(swatches)) == 3, swatches
        # Memory per user shows "—" once under 100 users are online (the bots are leaving).
        until(bob, lambda d: by_id(d, "now-memory").text == "—", "memory per user hidden")
        assert "100" in by_id(bob, "now-memory").get_attribute("title")
        bob.save_screenshot(str(shots / "dashboard-1280-2x.png"))
        check_layout(bob, "dashboard at 1280 px")
        emulate(bob, 360, 740)  # a phone: the charts one under the other, at 1x
        until(bob, lambda d: d.execute_script(
            "const c = arguments[0]; return c.width === c.clientWidth && c.clientWidth < 360",
            canvas), "redrawn at 1x and 360 px")  # fmt: skip
        bob.save_screenshot(str(shots / "dashboard-360.png"))
        check_layout(bob, "dashboard at 360 px", scrolls_down=True)
        no_console_errors(bob)
    finally:
        bob.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def mint(daemon: ChatDaemon, user: str) -> str:
    """A sign-in token from the backend API, as a backend gets one."""
    request = urllib.request.Request(
        f"{daemon.url}/api/v1/users/{user}/token",
        data=b'{"ttl": 600}',
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as answer:
        return str(json.load(answer)["token"])


def test_a_backend_signs_its_user_in_through_the_url_fragment(daemon: ChatDaemon, bob: Any) -> None:
    """examples/flask_backend.py sends the browser to ``/#user=NAME&token=TOKEN``: the page
    signs in as that user (not a guest), and the token leaves the address bar at once; a token
    that is refused brings the sign-in form back with the reason, the fragment gone too."""
    token = mint(daemon, "dora")
    bob.get("about:blank")  # a new document, as after the backend's redirect
    bob.get(f"{daemon.url}/#user=dora&token={token}")
    until(bob, lambda d: text_of(d, "status") == "signed in as dora", "dora signed in")
    until(bob, lambda d: text_of(d, "room-title") == "lobby", "dora in the lobby")
    assert bob.current_url == daemon.url + "/"
    seen = Peer(daemon, "watcher", token=make_token(SECRET, "watcher"))
    assert seen.call("seen", user="dora")["online"] is True
    assert seen.call("seen", user="~dora")["code"] == "no-such-user"
    seen.close()

    bob.get("about:blank")
    bob.get(f"{daemon.url}/#user=dora&token={token[:-2]}xx")
    until(bob, lambda d: by_id(d, "signin").is_displayed(), "the sign-in form back")
    until(bob, lambda d: "token was refused" in text_of(d, "signin-error"), "the reason")
    assert bob.current_url == daemon.url + "/"
    assert by_id(bob, "name").get_attribute("value") == "dora"
    no_console_errors(bob)


# Names around the rules' edges: lengths, a final newline, lookalikes, a "Z" (which \Z would be
# in ECMA-262), every troublemaker of test_names.py before and after a name.
EDGES = [
    "ann",
    "~ann",
    "a" * 32,
    "a" * 33,
    "~" + "a" * 32,
    "~" + "a" * 33,
    "a" * 64,
    "a" * 65,
    "",
    "~",
    "~~a",
    "a~",
    "bob\n",
    "\nbob",
    "bob\r\n",
    "ann.Z",
    "Z",
    "a b",
    "a-b_c.D9",
]
EDGES += [f"ann{odd}" for odd in CONFUSABLES + CONTROLS + ' ~"\\/:@#+$^*']
EDGES += [f"{odd}ann" for odd in CONFUSABLES + CONTROLS + ' ~"\\/:@#+$^*']


def test_openapi_name_patterns_mean_the_same_in_ecma_262(bob: Any) -> None:
    """JSON Schema's patterns are ECMA-262 regular expressions: run by the browser's engine (with
    the ``u`` flag, as validators such as ajv use, and without), each OpenAPI name schema takes
    exactly the names the server's check takes."""
    for label, schema, check in name_schemas():
        for flags in ("", "u"):
            taken = bob.execute_script(
                "const [schema, flags, texts] = arguments;"
                "const pattern = new RegExp(schema.pattern, flags);"
                "return texts.map((text) => [...text].length >= schema.minLength"
                " && [...text].length <= schema.maxLength && pattern.test(text))",
                schema,
                flags,
                EDGES,
            )
            wrong = [text for text, ok in zip(EDGES, taken, strict=True) if ok != check(text)]
            assert not wrong, (label, flags, wrong)


def test_the_page_resumes_after_a_restart_and_shows_what_it_missed_once(
    bob: Any, tmp_path: Path
) -> None:
    """With ``state_dir`` a restart keeps the rooms' history and epoch: the page reconnects by
    itself, its hello resumes the lobby where it stopped, and the 30 messages posted while it was
    away are shown once each, in order, without a history request."""
    options = ("--secret", SECRET, "--rate-limit", "0", "--state-dir", str(tmp_path / "state"))
    with ChatDaemon(*options) as chat:
        bob.get(chat.url + "/")
        by_id(bob, "token").send_keys(make_token(SECRET, "zoe"))
        by_id(bob, "name").send_keys("zoe", Keys.ENTER)
        until(bob, lambda d: signed_in_as(d) == "zoe", "zoe signed in")
        until(bob, lambda d: text_of(d, "room-title") == "lobby", "zoe in the lobby")
        yan = Client(chat.tcp_port)
        assert yan.ok("hello", v=1, user="yan", token=make_token(SECRET, "yan"))
        yan.ok("join", room="lobby")
        expected = [f"yan before-{i}" for i in range(5)]
        for text in expected:
            yan.ok("post", room="lobby", text=text.split(" ")[1])
        until(bob, lambda d: shows(d, expected[-1]), "zoe reads yan")
        yan.close()

        chat.stop()
        until(bob, lambda d: by_id(d, "connection").is_displayed(), "zoe is told")
        # Taken before the restart: the page may reconnect, and say hello, as soon as the
        # daemon listens, before this test's next call reaches the browser.
        start = now(bob)
        chat.__enter__()  # the same ports and state_dir
        yan = Client(chat.tcp_port)
        assert yan.ok("hello", v=1, user="yan", token=make_token(SECRET, "yan"))
        for i in range(30):
            text = f"missed-{i}"
            yan.ok("post", room="lobby", text=text)
            expected.append(f"yan {text}")
        until(bob, lambda d: not by_id(d, "connection").is_displayed(), "zoe is back", wait=30)
        until(bob, lambda d: shows(d, expected[-1]), "zoe reads what she missed")
        yan.ok("post", room="lobby", text="live")
        expected.append("yan live")
        until(bob, lambda d: shows(d, "yan live"), "and what comes after")
        assert [line for line in messages(bob) if line.startswith("yan ")] == expected
        ops = requests_since(bob, start)
        assert "hello" in ops and "history" not in ops, ops  # resumed, not reloaded
        yan.close()
        no_console_errors(bob)
