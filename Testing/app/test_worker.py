"""The worker thread: order, results and errors in the polled queue, cancel, shutdown (real threads)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from conftest import wait_idle

from InteractiveAdaptLib.app.inline_executor import InlineExecutor
from InteractiveAdaptLib.app.worker import JobCancelled, Worker
from InteractiveAdaptLib.errors import InvalidClickError


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.shutdown(timeout=5)


def test_jobs_run_in_submission_order_on_one_thread(worker):
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        time.sleep(0.002 * (5 - n))  # later jobs are quicker: order must still hold
        seen.append((n, threading.current_thread().name))
        return n * n

    jobs = [worker.submit(job, n, description=f"job {n}") for n in range(5)]
    assert wait_idle(worker, 5)
    results = worker.poll()
    assert [r.job_id for r in results] == [j.id for j in jobs]
    assert [r.value for r in results] == [0, 1, 4, 9, 16]
    assert [n for n, _ in seen] == list(range(5))
    assert {name for _, name in seen} == {"InteractiveAdapt worker"}
    assert all(r.ok and r.duration_s >= 0 for r in results)
    assert worker.poll() == []  # drained


def test_callbacks_run_in_the_polling_thread_not_the_worker(worker):
    called_in: list[str] = []
    worker.submit(lambda: 42, on_done=lambda result: called_in.append(threading.current_thread().name))
    assert wait_idle(worker, 5)
    assert called_in == []  # nothing happens until the GUI polls
    (result,) = worker.poll()
    assert result.value == 42 and called_in == [threading.current_thread().name]


def test_exceptions_are_delivered_as_results_never_lost(worker):
    def bad() -> None:
        raise InvalidClickError("The point is outside the image. Click inside the image.")

    def worse() -> None:
        raise ZeroDivisionError("bug")

    worker.submit(bad, description="bad")
    worker.submit(worse, description="worse")
    worker.submit(lambda: "still running", description="after")
    assert wait_idle(worker, 5)
    bad_result, worse_result, after = worker.poll()
    assert isinstance(bad_result.error, InvalidClickError) and not bad_result.ok
    assert str(bad_result.error) == "The point is outside the image. Click inside the image."
    assert "InvalidClickError" in bad_result.traceback and "def bad" not in str(bad_result.error)
    assert isinstance(worse_result.error, ZeroDivisionError)
    assert after.ok and after.value == "still running" and worker.alive


def test_cancel_drops_pending_jobs_and_flags_the_running_one(worker):
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def long_job(cancel_event: threading.Event) -> str:
        started.set()
        while not cancel_event.is_set():
            time.sleep(0.001)
        release.wait(5)
        return "stopped early"

    worker.submit(long_job, pass_cancel_event=True, description="long")
    for n in range(3):
        worker.submit(ran.append, n)
    assert started.wait(5)
    assert worker.busy and worker.current_description == "long"
    assert worker.cancel() == 4
    release.set()
    assert wait_idle(worker, 5)
    results = worker.poll()
    assert len(results) == 4 and all(r.cancelled for r in results)  # each job still reports back
    assert results[0].value == "stopped early" and ran == []
    # the worker keeps serving after a cancel
    worker.submit(ran.append, 7)
    assert wait_idle(worker, 5)
    assert worker.poll()[0].ok and ran == [7]


def test_a_job_may_stop_itself_by_raising_job_cancelled(worker):
    def job() -> None:
        raise JobCancelled()

    worker.submit(job)
    assert wait_idle(worker, 5)
    (result,) = worker.poll()
    assert result.cancelled and result.error is None and not result.ok


def test_a_failing_callback_is_logged_and_the_next_results_still_arrive(worker, caplog):
    got: list[int] = []
    worker.submit(lambda: 1, on_done=lambda r: 1 / 0)
    worker.submit(lambda: 2, on_done=lambda r: got.append(r.value))
    assert wait_idle(worker, 5)
    with caplog.at_level(logging.ERROR):
        results = worker.poll()
    assert len(results) == 2 and got == [2]
    assert "callback of job" in caplog.text


def test_poll_can_take_results_a_few_at_a_time(worker):
    for n in range(5):
        worker.submit(lambda n=n: n)
    assert wait_idle(worker, 5)
    assert [r.value for r in worker.poll(max_results=2)] == [0, 1]
    assert [r.value for r in worker.poll()] == [2, 3, 4]


def test_shutdown_is_clean_and_refuses_new_jobs():
    w = Worker()
    gate = threading.Event()
    w.submit(gate.wait, 5)
    w.submit(lambda: "never")
    gate.set()
    assert w.shutdown(timeout=5)
    assert not w.alive
    with pytest.raises(RuntimeError, match="shut down"):
        w.submit(lambda: None)
    results = w.poll()
    assert results[-1].cancelled  # queued at shutdown: reported, not run


def test_wait_idle_times_out_while_a_job_runs(worker):
    gate = threading.Event()
    worker.submit(gate.wait, 5)
    assert not wait_idle(worker, 0.05)
    gate.set()
    assert wait_idle(worker, 5)


def test_inline_executor_has_the_same_contract():
    executor = InlineExecutor()
    results = []
    executor.submit(lambda a, b: a + b, 2, 3, on_done=results.append)
    executor.submit(lambda: (_ for _ in ()).throw(InvalidClickError("outside")), on_done=results.append)
    assert results[0].ok and results[0].value == 5
    assert isinstance(results[1].error, InvalidClickError) and "InvalidClickError" in results[1].traceback
    assert executor.poll() == [] and executor.cancel() == 0 and not executor.busy


def test_drain_runs_callbacks_and_follow_up_jobs_until_idle(worker):
    order: list[str] = []
    ticks: list[int] = []

    def first_done(result) -> None:
        order.append("first")
        worker.submit(lambda: "second", on_done=lambda r: order.append(r.value))  # submitted from a callback

    worker.submit(time.sleep, 0.05, on_done=first_done)
    assert worker.drain(timeout=5, tick=lambda: ticks.append(1))
    assert order == ["first", "second"] and ticks and not worker.busy
    gate = threading.Event()
    worker.submit(gate.wait, 5)
    assert not worker.drain(timeout=0.05)
    gate.set()
    assert worker.drain(timeout=5)


def test_cancel_can_target_one_owner_or_some_jobs_and_leaves_the_others_queued(worker):
    gate = threading.Event()
    ran: list[str] = []
    case, export = object(), "site export"
    worker.submit(gate.wait, 5, owner=case, description="case: running")
    worker.submit(ran.append, "case queued", owner=case)
    export_job = worker.submit(ran.append, "export", owner=export)
    other = worker.submit(ran.append, "untagged")
    assert worker.cancel(owner=case) == 2  # resetting a case must not drop a queued export
    assert worker.cancel(job_ids=[other.id]) == 1
    assert worker.cancel(job_ids=[export_job.id], owner=case) == 0  # both filters must match
    gate.set()
    assert wait_idle(worker, 5)
    results = {r.job_id: r for r in worker.poll()}
    assert ran == ["export"]
    assert results[export_job.id].ok and results[other.id].cancelled
    assert [r.cancelled for r in results.values()] == [True, True, False, True]


def test_cancel_filters_are_keyword_only_so_a_signal_flag_cannot_become_one(worker):
    with pytest.raises(TypeError):
        worker.cancel(False)  # what Qt's clicked(bool) would pass to a connected slot


def test_poll_can_wait_for_results_and_returns_early_when_nothing_is_pending(worker):
    started = time.perf_counter()
    assert worker.poll(wait_s=1.0) == []  # idle: no wait at all
    assert time.perf_counter() - started < 0.5
    worker.submit(time.sleep, 0.05, on_done=lambda r: None)
    (result,) = worker.poll(wait_s=5.0)  # returns as soon as the only pending job is delivered
    assert result.ok and not worker.busy
    gate = threading.Event()
    worker.submit(gate.wait, 5)
    started = time.perf_counter()
    assert worker.poll(wait_s=0.05) == []  # the budget bounds the wait
    assert 0.04 < time.perf_counter() - started < 1.0
    gate.set()
    assert worker.drain(5)


def test_tick_returns_a_short_interval_while_work_remains_and_a_long_one_when_idle(worker):
    from InteractiveAdaptLib.app.worker import BUSY_INTERVAL_MS, IDLE_INTERVAL_MS

    assert BUSY_INTERVAL_MS < IDLE_INTERVAL_MS
    assert worker.tick() == IDLE_INTERVAL_MS
    gate = threading.Event()
    delivered: list[int] = []
    worker.submit(gate.wait, 5, on_done=lambda r: delivered.append(r.job_id))
    assert worker.tick(budget_s=0.01) == BUSY_INTERVAL_MS and not delivered
    gate.set()
    assert worker.tick(budget_s=5) == IDLE_INTERVAL_MS and delivered


def test_inline_executor_accepts_owners_and_cancel_filters():
    executor = InlineExecutor()
    results = []
    executor.submit(lambda: 1, owner="case", on_done=results.append)
    assert results[0].value == 1
    assert executor.cancel(owner="case") == 0 and executor.cancel(job_ids=[1]) == 0
    assert executor.tick() > 0 and executor.poll(wait_s=1) == []


def test_a_job_without_a_cancel_flag_that_ran_to_the_end_is_not_reported_cancelled(worker):
    started, release = threading.Event(), threading.Event()

    def rollback():  # cannot stop half-way: once started it happens
        started.set()
        release.wait(5)
        return "rolled back"

    worker.submit(rollback)
    assert started.wait(5)
    worker.cancel()
    release.set()
    assert wait_idle(worker, 5)
    (result,) = worker.poll()
    assert result.ok and result.value == "rolled back"


def test_a_result_says_its_kind_owner_range_and_message_without_parsing_text():
    from InteractiveAdaptLib.errors import CaseStateError
    from InteractiveAdaptLib.interaction import Block, CaseUpdate, JobKind

    owner, results = object(), []
    executor = InlineExecutor()
    update = CaseUpdate(None, [Block(0, 4, np.zeros((3, 2, 2), np.uint8))], [5])
    executor.submit(lambda: update, kind=JobKind.FILL, owner=owner, on_done=results.append)
    executor.submit(
        _raise(CaseStateError("No case is open. Start one.")), kind=JobKind.SLICE, on_done=results.append
    )
    executor.submit(_raise(ZeroDivisionError("division by zero in a server path")), on_done=results.append)
    filled, refused, failed = results
    assert (filled.kind, filled.owner, filled.slice_range, filled.message) == (
        JobKind.FILL,
        owner,
        (4, 6),
        "",
    )
    assert filled.description == JobKind.FILL.text and filled.duration_s >= 0
    assert refused.kind is JobKind.SLICE and refused.message == "No case is open. Start one."
    assert refused.slice_range is None
    assert (
        failed.kind is JobKind.OTHER
        and "ZeroDivisionError" in failed.message
        and "server path" not in failed.message
    )


def _raise(error):
    def job():
        raise error

    return job


def test_a_background_job_leaves_the_event_loop_more_room_than_a_click():
    """While Finish learns, the GUI timer waits less and comes back later, so the views keep drawing;
    a click's jobs keep the short interval (their results are what the user waits for)."""
    from InteractiveAdaptLib.app.worker import (
        BACKGROUND_BUDGET_S,
        BACKGROUND_INTERVAL_MS,
        BUSY_INTERVAL_MS,
        TICK_BUDGET_S,
    )
    from InteractiveAdaptLib.interaction import JobKind

    worker = Worker()
    waits: list[float] = []
    poll = worker.poll
    worker.poll = lambda max_results=None, wait_s=0.0: waits.append(wait_s) or poll(max_results, wait_s)
    try:
        for kind, interval, budget in (
            (JobKind.FINISH, BACKGROUND_INTERVAL_MS, BACKGROUND_BUDGET_S),
            (JobKind.SLICE, BUSY_INTERVAL_MS, TICK_BUDGET_S),
        ):
            release = threading.Event()
            worker.submit(release.wait, 5, kind=kind)
            assert wait_until(lambda k=kind: worker.current_kind is k)
            assert worker.tick() == interval and waits[-1] == budget
            release.set()
            assert wait_idle(worker, 5)
            poll()
        assert BACKGROUND_BUDGET_S < TICK_BUDGET_S and BACKGROUND_INTERVAL_MS > BUSY_INTERVAL_MS
        assert worker.current_kind is None and worker.tick() > BACKGROUND_INTERVAL_MS
    finally:
        worker.shutdown(timeout=5)


def wait_until(condition, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
