"""The demo's worker pool: a stage failing after the workers went idle stops them, not hangs."""

import time

import pytest

from lakehouse.demo_workers import Workers


@pytest.mark.timeout(180)  # a hang here is the failure: Pool.terminate waiting for ever
def test_a_failure_after_the_workers_went_idle_stops_them_and_propagates():
    started = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="a later stage failed"),
        Workers("local", count=2) as workers,
    ):
        assert workers.map(abs, [-1, -2, -3]) == [1, 2, 3]
        time.sleep(1)  # both workers idle, one of them waiting on the task queue
        raise RuntimeError("a later stage failed")
    assert time.monotonic() - started < 120
