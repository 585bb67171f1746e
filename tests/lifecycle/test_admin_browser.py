"""A real web page in headless Chromium tries to stop a daemon through its token-less TCP admin
endpoint on loopback, as any page a user opens could: with ``fetch`` and with a form that
submits itself. The browser sends its ``Origin``; the endpoint answers 403 and the daemon serves
on. Driven with Selenium and Debian's ``chromium`` + ``chromium-driver``; skipped, saying why,
when either is missing.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support import free_port, wait_until

from .helpers import Daemon, talk

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium "
    "chromium-driver)",
)

from selenium.webdriver.chrome.service import Service  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-dev-shm-usage"]  # fmt: skip

PAGE = """<!doctype html>
<title>cute cats</title>
<pre id="out">pending</pre>
<form id="form" method="POST" action="http://127.0.0.1:{admin}/stop" target="sink"></form>
<iframe name="sink"></iframe>
<script>
  const out = document.getElementById("out");
  fetch("http://127.0.0.1:{admin}/stop", {{method: "POST", mode: "no-cors", body: "x"}})
    .then(() => {{ out.textContent = "fetch sent"; document.getElementById("form").submit(); }})
    .catch((error) => {{ out.textContent = "fetch failed: " + error; }});
</script>
"""


class PageServer:
    """An HTTP server on another loopback port: the site of the hostile page."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.served: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.served.append(self.path)
                data = site.pages.get(self.path, b"")
                self.send_response(200 if data else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def site() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.mark.slow
def test_a_web_page_cannot_stop_the_daemon(tmp_path: Path, site: PageServer) -> None:
    admin = free_port()
    site.pages["/cats.html"] = PAGE.format(admin=admin).encode()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    with Daemon(tmp_path, "echo", "--admin", f"127.0.0.1:{admin}") as daemon:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            driver.get(f"http://127.0.0.1:{site.port}/cats.html")
            out = driver.find_element("id", "out")
            wait_until(lambda: out.text == "fetch sent", timeout=15, what="the page's fetch")
            driver.switch_to.frame("sink")
            wait_until(
                lambda: "forbidden" in driver.page_source, timeout=15, what="the form's answer"
            )
            assert "Origin" in driver.page_source
        finally:
            driver.quit()
        assert "/cats.html" in site.served
        assert daemon.process is not None and daemon.process.poll() is None
        assert talk(daemon.port, [b"still serving"]) == [b"still serving"]
    assert daemon.process.returncode == 0
