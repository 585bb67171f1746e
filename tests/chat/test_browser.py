"""Two people in two headless Chromium browsers on the chat page of a real ``residentd run chat``:
they sign in, meet in the lobby, see each other's messages, and one sees the other go offline
when that browser closes. The dashboard draws its charts from ``/stats``.

Driven with Selenium and Debian's ``chromium`` + ``chromium-driver`` (same version by
construction); skipped, saying why, when either is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .daemon import ChatDaemon

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = [
    pytest.mark.chromium,
    pytest.mark.skipif(
        not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium "
        "chromium-driver)",
    ),
]

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
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
    "--window-size=1200,800",
]
WAIT = 15.0


def browser() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def daemon() -> Iterator[ChatDaemon]:
    with ChatDaemon() as running:
        yield running


def until(driver: Any, condition: Any, what: str) -> Any:
    return WebDriverWait(driver, WAIT).until(lambda d: condition(d), message=what)


def sign_in(driver: Any, url: str, name: str) -> None:
    driver.get(url + "/")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "signin-button").click()
    until(driver, lambda d: d.find_element(By.ID, "status").text.startswith("signed in as "),
          f"{name} signed in")  # fmt: skip
    until(driver, lambda d: d.find_element(By.ID, "room-title").text == "lobby", "in the lobby")


def member_class(driver: Any, user: str) -> str | None:
    found = driver.find_elements(By.CSS_SELECTOR, f'#members li[data-user="{user}"]')
    return found[0].get_attribute("class") if found else None


def messages(driver: Any) -> list[str]:
    return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#messages li.message")]


def say(driver: Any, text: str) -> None:
    box = driver.find_element(By.ID, "text")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def test_two_browsers_chat_and_see_presence(daemon: ChatDaemon) -> None:
    ann = browser()
    bob = browser()
    try:
        sign_in(ann, daemon.url, "ann")
        sign_in(bob, daemon.url, "bob")
        until(ann, lambda d: member_class(d, "bob") == "online", "ann sees bob online")
        until(bob, lambda d: member_class(d, "ann") == "online", "bob sees ann online")
        say(ann, "hello bob")
        until(bob, lambda d: any(m.endswith("hello bob") for m in messages(d)), "bob reads ann")
        say(bob, "hi ann")
        until(ann, lambda d: any(m.endswith("hi ann") for m in messages(d)), "ann reads bob")
        # Both see the same conversation in the same order.
        assert [m.split(" ", 1)[1] for m in messages(ann)] == [
            m.split(" ", 1)[1] for m in messages(bob)
        ]
        bob.quit()
        bob = None
        until(ann, lambda d: member_class(d, "bob") == "offline", "ann sees bob go offline")
        assert "seen" in ann.find_element(By.CSS_SELECTOR, '#members li[data-user="bob"]').text
        ann.get(daemon.url + "/dashboard")
        until(ann, lambda d: int(d.find_element(By.TAG_NAME, "body").get_attribute(
            "data-samples") or 0) >= 2, "the dashboard has samples")  # fmt: skip
        assert "updated" in ann.find_element(By.ID, "status").text
        assert ann.find_element(By.ID, "now-memory").text
        assert not [entry for entry in ann.get_log("browser") if entry["level"] == "SEVERE"], (
            "no errors in the console (CSP included)"
        )
    finally:
        ann.quit()
        if bob is not None:
            bob.quit()
