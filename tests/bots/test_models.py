"""Pieces of the load models and of the server-side verdicts, on their own."""

from __future__ import annotations

import random

import pytest

from residentd.bots.load import Plan, Think
from residentd.bots.server import ServerSample, memory_per_user, trend
from residentd.bots.workers import plan_shares, source_addresses, split

pytestmark = pytest.mark.same_either_way


def test_think_time_specs() -> None:
    rng = random.Random(1)
    assert Think.parse("0.5").sample(rng) == 0.5
    uniform = Think.parse("uniform:0.1:0.3")
    assert all(0.1 <= uniform.sample(rng) <= 0.3 for _ in range(200))
    exponential = Think.parse("exp:0.2")
    mean = sum(exponential.sample(rng) for _ in range(5000)) / 5000
    assert 0.17 < mean < 0.23
    assert str(uniform) == "uniform:0.1:0.3" and str(exponential) == "exp:0.2"
    for bad in ("soon", "uniform:3:1", "-1", "exp:", "uniform:1"):
        with pytest.raises(ValueError):
            Think.parse(bad)


def test_load_is_split_over_generators() -> None:
    assert split(10, 3) == [4, 3, 3]
    plan = Plan("closed", 10, 90.0, Think.parse("0"), 5.0, requests=7, rate=30.0)
    shares = plan_shares(plan, 3)
    assert [share.users for share in shares] == [4, 3, 3]
    assert [share.first_index for share in shares] == [0, 4, 7]
    assert [share.requests for share in shares] == [3, 2, 2]
    assert all(share.spawn_rate == 30.0 and share.rate == 10.0 for share in shares)


def test_source_addresses_are_loopback_from_127_0_0_2() -> None:
    assert source_addresses("127.0.0.1", 3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert source_addresses("127.0.0.1", 300)[-1] == "127.0.1.45"
    assert source_addresses("::1", 3) == []


def ramp(rss_per_second: float, noise: float, seconds: int = 120) -> list[ServerSample]:
    rng = random.Random(3)
    samples = []
    for t in range(1, seconds + 1):
        users = min(1000, t * 200)
        rss = 50e6 + users * 2000 + rss_per_second * t + rng.gauss(0, noise)
        samples.append(ServerSample(float(t), int(rss), 1010, 10.0, users))
    return samples


def test_memory_per_user_is_growth_over_baseline_per_user_online() -> None:
    baseline = ServerSample(-1.0, 50_000_000, 10, 0.0, 0)
    result = memory_per_user(baseline, ramp(0, 0))
    assert result["users_at_measure"] == 1000
    assert result["memory_per_user_bytes"] == pytest.approx(2000, abs=1)


def test_soak_verdicts() -> None:
    steady = trend(ramp(rss_per_second=0, noise=200_000))
    assert steady["verdict"] == "no leak"
    assert abs(steady["rss"]["slope_per_hour"]) < 20e6  # noise, not growth
    leaking = trend(ramp(rss_per_second=100_000, noise=200_000))  # 360 MB an hour
    assert leaking["verdict"] == "leak suspected"
    assert leaking["rss"]["slope_per_hour"] == pytest.approx(360e6, rel=0.1)
    assert trend(ramp(0, 0, seconds=2))["verdict"] == "not enough samples"
