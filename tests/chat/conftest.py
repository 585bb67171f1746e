"""Fixtures of the chat tests: the transport a protocol test runs over, and the browser marker."""

from __future__ import annotations

import pytest

from .helpers import TRANSPORTS


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chromium: drives headless Chromium (needs /usr/bin/chromium and chromedriver)"
    )


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """``tcp`` or ``ws``: protocol tests run once over each, with the same messages."""
    return str(request.param)
