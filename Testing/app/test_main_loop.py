"""The worker under an emulation of Slicer's main loop, which holds the GIL while Qt idles (issue 15).

A real torch job (matrix products on one CPU thread, about 20-40 GIL hand-overs) is submitted from a
"mouse click" on the emulated main thread. With the module's GIL-aware timer (`Worker.tick`), its result
arrives about as soon as the job alone would take; with the old design (a 50 ms timer calling a `poll()`
that never waits) it crawls, one torch call per tick. Timings are compared with the job's own duration
measured in the same test, with wide margins: two benchmarks may load this 2-core machine meanwhile.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch

from interactive_adapt_lab.evaluation.slicer_main_loop import SlicerMainLoop, attach_worker
from InteractiveAdaptLib.app.worker import BUSY_INTERVAL_MS, IDLE_INTERVAL_MS, TICK_BUDGET_S, Worker

MATRIX_SIZE = 512
PRODUCTS = 12  # about 70 ms on one core of this machine
STALL_TARGET_S = 0.150  # the GUI's longest acceptable stall


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.shutdown(timeout=30)


def busy_job(products: int = PRODUCTS) -> float:
    """Many short torch calls, each of which hands the GIL back and forth, as a forward pass does."""
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(MATRIX_SIZE, MATRIX_SIZE, generator=generator) / MATRIX_SIZE**0.5
    x = torch.randn(MATRIX_SIZE, MATRIX_SIZE, generator=generator)
    for _ in range(products):
        x = torch.tanh(weights @ x)
    return float(x.sum())


def own_duration_s(products: int = PRODUCTS) -> float:
    """The job's duration run directly, the best of three (the machine may be busy)."""
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        busy_job(products)
        durations.append(time.perf_counter() - started)
    return min(durations)


def click_to_result_s(loop: SlicerMainLoop, worker: Worker, timeout_s: float = 30.0) -> float:
    """Submit the job from a 'mouse click' on the emulated main thread; seconds until its callback ran."""
    times: dict[str, float] = {}

    def click() -> None:
        times["clicked"] = time.perf_counter()
        worker.submit(busy_job, on_done=lambda result: times.setdefault("delivered", time.perf_counter()))

    loop.call_later(0.013, click, "mouse click")  # between two idle ticks
    assert loop.run_until(lambda: "delivered" in times, timeout_s), "the result never arrived"
    return times["delivered"] - times["clicked"]


def test_a_job_runs_at_full_speed_under_a_loop_that_holds_the_gil(worker):
    own = own_duration_s()
    loop = SlicerMainLoop(hold_gil=True)
    attach_worker(loop, worker)
    latencies = [click_to_result_s(loop, worker) for _ in range(3)]
    # the best of three: one slow spell of the loaded machine must not fail the test
    assert min(latencies) < 2 * own + 0.060, f"click to result {latencies} s for a {own:.3f} s job"
    assert loop.longest_stall() < STALL_TARGET_S, f"the GUI stalled {loop.longest_stall():.3f} s"


def test_the_old_plain_poll_crawls_under_the_same_loop(worker):
    """Documents the problem the GIL-aware tick solves: the same job, polled every 50 ms without waiting."""
    own = own_duration_s()
    loop = SlicerMainLoop(hold_gil=True)
    attach_worker(loop, worker, gil_aware=False)
    latency = click_to_result_s(loop, worker)
    # Each torch call needs the GIL back, which the old loop hands over once per 50 ms tick: at least six
    # ticks for this job (measured 0.49-1.2 s; a fixed 0.5 s floor failed twice in make test).
    assert latency > 4 * own and latency > 0.3, f"click to result {latency:.3f} s for a {own:.3f} s job"


def test_the_gui_stalls_at_most_one_tick_budget_during_a_long_job(worker):
    loop = SlicerMainLoop(hold_gil=True)
    timer = attach_worker(loop, worker)
    intervals: list[float] = []
    done = threading.Event()
    worker.submit(busy_job, PRODUCTS * 6, on_done=lambda result: done.set())
    assert timer.interval_ms == 0, "a submit from the main thread wakes the timer at once"
    started = time.perf_counter()

    def record_interval() -> None:
        intervals.append(timer.interval_ms)

    loop.add_timer(record_interval, 10, "observer")
    assert loop.run_until(done.is_set, 60)
    ticks = [s for s in loop.stalls if s.label == "worker tick" and s.started >= started]
    assert len(ticks) >= 3, "a long job is delivered over several ticks, not in one blocking wait"
    # Each tick waits at most its budget; scheduling delays of a loaded machine get a wide margin.
    assert max(s.duration_s for s in ticks) < max(STALL_TARGET_S, 3 * TICK_BUDGET_S)
    assert BUSY_INTERVAL_MS in intervals, "while busy the timer ticks often"
    loop.run_for(0.2)
    assert timer.interval_ms == IDLE_INTERVAL_MS, "idle again: the timer slows down"


def test_wake_is_called_for_submits_from_the_main_thread_only(worker):
    woken: list[str] = []
    worker.wake = lambda: woken.append(threading.current_thread().name)
    worker.submit(lambda: worker.submit(lambda: None, description="from the worker"), description="main")
    assert worker.drain(10)
    assert woken == [threading.current_thread().name]
    worker.wake = lambda: 1 / 0  # a failing wake is logged; the job is queued all the same
    worker.submit(lambda: None)
    assert worker.drain(10)


def test_the_emulated_loop_holds_the_gil_while_idle():
    """The emulation's premise: a pure Python thread does not advance while the loop idles."""
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        time.sleep(0.05)  # let it start
        loop = SlicerMainLoop(hold_gil=True)
        before = counter[0]
        loop.run_for(1.0)  # no timers, nothing posted: it idles the whole second with the GIL held
        held_per_s = counter[0] - before
        before = counter[0]
        time.sleep(0.3)
        released_per_s = (counter[0] - before) / 0.3
    finally:
        stop.set()
        thread.join(5)
    # The thread still runs for a few switch intervals around the idle call (more on a loaded machine).
    assert held_per_s < released_per_s / 5, (
        f"{held_per_s:.0f}/s while the loop idled, {released_per_s:.0f}/s free"
    )
