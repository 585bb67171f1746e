"""Histograms merged from several generator processes equal one histogram of all samples."""

from __future__ import annotations

import multiprocessing

import pytest

from residentd.bots.stats import HIGHEST_US, Recorder, RunStats, new_histogram, percentiles_ms

from .helpers import record_in_process, sample_latencies_ns

pytestmark = pytest.mark.same_either_way


def test_histograms_merged_across_processes_equal_one_of_all_samples() -> None:
    jobs = [(worker, 1000 + worker, 20_000 + 5_000 * worker) for worker in range(3)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        intervals = pool.map(record_in_process, jobs)
    stats = RunStats(workers=3)
    for interval in intervals:
        stats.add(interval)
    merged = stats.steps["step"]

    reference = new_histogram()
    for _, seed, n in jobs:
        for latency in sample_latencies_ns(seed, n):
            reference.record_value(min(latency // 1000, HIGHEST_US))
    assert merged.histogram.equals(reference)
    assert merged.ok == reference.get_total_count() == sum(n for _, _, n in jobs)
    assert merged.errors == {"timeout": 3}
    assert percentiles_ms(merged.histogram) == percentiles_ms(reference)
    # The three generators' second is closed once all of them reported it.
    assert [point.second for point in stats.timeline] == [1]
    assert stats.timeline[0].users == 30
    assert stats.timeline[0].count == merged.count


def test_a_second_closes_only_when_every_generator_reported_it() -> None:
    stats = RunStats(workers=2)
    first, second = Recorder(0), Recorder(1)
    first.record("a", 1_000_000)
    stats.add(first.interval(1))
    assert stats.timeline == []
    second.record("a", 3_000_000)
    stats.add(second.interval(1))
    assert len(stats.timeline) == 1
    point = stats.timeline[0]
    assert point.count == 2
    assert point.latency["max_ms"] >= 2.99


def test_recorder_resets_after_each_interval() -> None:
    recorder = Recorder()
    recorder.record("a", 5_000)
    recorder.late = 3
    first = recorder.interval(1)
    assert first.steps["a"].ok == 1 and first.late == 3
    empty = recorder.interval(2)
    assert empty.steps == {} and empty.late == 0
