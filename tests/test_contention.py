"""Contention handled, not only noted: timed blocks screened, contended ones measured again, and a
record that could not be made clean marked ``contended`` with its reason, in the report too."""
from __future__ import annotations

import time

import pytest

from harness.measure import contention
from harness.measure.contention import Screen, judge_window, time_screened
from harness.measure.timing import Budget, time_calls


class Scripted:
    """A probe whose readings come from a list: True reads contended (threads waited 50%), False quiet."""

    def __init__(self, script: list[bool], then: bool = False) -> None:
        self.script, self.then = list(script), then

    def __call__(self) -> Scripted.Load:
        busy = self.script.pop(0) if self.script else self.then
        return Scripted.Load(busy)

    class Load:
        def __init__(self, busy: bool) -> None:
            self.busy, self.wait_share, self.other_cores, self.wall_s = busy, None, None, 0.0

        def __enter__(self):
            self.t0 = time.perf_counter()
            return self

        def __exit__(self, *exc):
            self.wall_s = time.perf_counter() - self.t0
            self.wait_share, self.other_cores = (0.5, 1.0) if self.busy else (0.001, 0.0)


def test_a_contended_block_is_measured_again_and_its_timings_dropped():
    screen = Screen(retries=6, probe=Scripted([True, True, False]), backoff_s=0.001)
    calls = []
    result = screen.run(lambda: calls.append(len(calls)) or len(calls))
    assert result == 3 and len(calls) == 3  # the third, quiet, block is the one kept
    assert screen.kept == 1 and screen.remeasured == 2 and screen.contended_kept == 0
    v = screen.verdict()
    assert v == {"contended": False, "contended_reason": None, "contention_retries": 2,
                 "host_run_wait": pytest.approx(0.001)}


def test_past_its_retries_a_busy_machine_makes_the_record_contended_with_the_reason():
    screen = Screen(retries=3, probe=Scripted([], then=True), backoff_s=0.001)
    for _ in range(8):
        screen.run(lambda: None)
    assert screen.remeasured == 3 and screen.kept == 8 and screen.contended_kept == 8
    v = screen.verdict(threads=1)
    assert v["contended"] is True and v["contention_retries"] == 3 and v["host_run_wait"] == pytest.approx(0.5)
    assert v["contended_reason"] == ("8 of 8 timed blocks were contended (the cell's threads waited for a CPU 50% "
                                     "of their time, other processes kept 1.00 cores busy) after 3 re-measured blocks")


def test_a_few_contended_blocks_among_many_do_not_make_the_record_contended():
    # 2 of 10 kept blocks contended cannot move the median of the rest: no flag, the count is kept
    screen = Screen(retries=0, probe=Scripted([True, False, False, False, False, True, False, False, False, False]))
    for _ in range(10):
        screen.run(lambda: None)
    assert screen.contended_kept == 2 and screen.verdict()["contended"] is False
    # 3 of 10 can: flagged
    screen = Screen(retries=0, probe=Scripted([True, True, True] + [False] * 7))
    for _ in range(10):
        screen.run(lambda: None)
    assert screen.verdict()["contended"] is True


def test_backoff_is_bounded():
    screen = Screen(retries=6, probe=Scripted([], then=True))
    t0 = time.perf_counter()
    screen.run(lambda: None)
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.5 + 0.5 s of back-off, then the block is kept as measured
    assert screen.slept_s == pytest.approx(1.75) and time.perf_counter() - t0 < 3.0
    t0 = time.perf_counter()
    for _ in range(20):  # the retries are spent: no more sleeping
        screen.run(lambda: None)
    assert time.perf_counter() - t0 < 0.5


def test_screened_timing_keeps_only_clean_blocks_and_counts_only_their_time():
    slow = {"on": True}
    probe = Scripted([True, True])  # the first two blocks ran while "another process" was busy

    class SlowWhileBusy(Scripted):
        def __call__(self):
            load = probe()
            slow["on"] = load.busy
            return load

    def fake_time_calls(fn, warmup, repeat):
        # a backend's timer whose readings say which block they came from: 2 ms while contended,
        # 0.1 ms when quiet (read off the state, not a clock, so a noisy machine cannot blur them)
        time.sleep(repeat.min_seconds)
        return [2_000_000 if slow["on"] else 100_000] * max(1, repeat.min_iters)

    screen = Screen(retries=6, probe=SlowWhileBusy([]), backoff_s=0.001)
    ns = time_screened(fake_time_calls, lambda: None, Budget(0, 0.0), Budget(20, 0.05), screen)
    assert screen.remeasured == 2 and screen.kept >= 5
    assert len(ns) >= 20 and set(ns) == {100_000}  # none of the contended blocks' readings
    assert screen.kept_s >= 0.05


def test_screened_timing_stops_at_the_precision_target_or_its_cap():
    screen = Screen(probe=Scripted([]))
    t0 = time.perf_counter()
    ns = time_screened(time_calls, lambda: time.sleep(0.0001 if time.perf_counter_ns() % 2 else 0.001),
                       Budget(0, 0.0), Budget(10, 0.0, target_rel_ci=0.0001, max_seconds=0.3), screen)
    assert 0.3 <= time.perf_counter() - t0 < 1.0 and len(ns) >= 10
    plain = time_screened(time_calls, lambda: None, Budget(0, 0.0), Budget(7, 0.0), Screen(probe=Scripted([])))
    assert 7 <= len(plain) <= 10  # min_iters / 5 calls per block, at least five blocks


def test_a_backend_timed_in_one_window_is_judged_not_remeasured():
    load = Scripted.Load(True)
    with load:
        pass
    v = judge_window(load, threads=1)
    assert v["contended"] is True and v["contention_retries"] == 0
    assert v["contended_reason"].startswith("the timing window was contended (the cell's threads waited")
    assert "not re-measured" in v["contended_reason"]


def test_own_threads_past_the_core_count_are_named_as_the_cause(monkeypatch):
    monkeypatch.setattr(contention.host_load, "cores", lambda: 2)

    class OwnLoad(Scripted.Load):
        def __exit__(self, *exc):
            self.wall_s, self.wait_share, self.other_cores = 0.05, 0.5, 0.0

    screen = Screen(retries=0, probe=lambda: OwnLoad(True))
    for _ in range(5):
        screen.run(lambda: None)
    assert "its own 8 threads outnumber the machine's 2 cores" in screen.verdict(threads=8)["contended_reason"]


def test_the_real_probe_reads_this_process_quiet_when_it_runs_alone():
    from harness.measure.host_load import BlockLoad

    with BlockLoad() as load:
        end = time.perf_counter() + 0.05
        while time.perf_counter() < end:
            pass
    assert load.wall_s >= 0.05
    if load.wait_share is not None:  # schedstat is there (Linux): a share, not ns or a count
        assert 0.0 <= load.wait_share <= 1.0
    if load.other_cores is not None:
        import os

        assert 0.0 <= load.other_cores <= (os.cpu_count() or 1)


QUICK = {"batch_sizes": [1], "warmup": {"min_iters": 2, "min_seconds": 0.0},
         "repeat": {"min_iters": 10, "min_seconds": 0.0}, "remeasure_contended": 2, "fidelity_samples": 16}


def test_a_backend_reporting_contention_gives_contended_records_and_the_report_marks_them(
        optbench_run, tiny_suite, misbehaving):
    suite = tiny_suite("quantize.dynamic_int8", model_params={"hidden": [32], "epochs": 1})
    suite["measure"] = QUICK
    suite["backends"] = [{"name": "test.contended"}]
    run = optbench_run(suite)
    base, int8 = sorted(run.records, key=lambda r: r["method"] != "baseline")
    for r in (base, int8):
        assert r["status"] == "ok" and r["contended"] is True and r["contention_retries"] == 2, r
        assert "timed blocks were contended" in r["contended_reason"] and r["host_run_wait"] == pytest.approx(0.5)
    assert int8["paired"] is True  # the pairs were screened too
    html = (run.run_dir / "report.html").read_text()
    assert html.count('class="contended"') == 2 and "timed blocks were contended" in html


def test_contention_that_passes_is_measured_away(optbench_run, tiny_suite, misbehaving):
    suite = tiny_suite("quantize.dynamic_int8", model_params={"hidden": [32], "epochs": 1})
    suite["measure"] = {**QUICK, "remeasure_contended": 6}
    suite["backends"] = [{"name": "test.contended", "params": {"blocks": 2}}]
    run = optbench_run(suite)
    base, int8 = sorted(run.records, key=lambda r: r["method"] != "baseline")
    assert base["contended"] is False and base["contention_retries"] == 2  # each cell opens its own session
    assert int8["contended"] is False and int8["contention_retries"] == 2
    assert base["contended_reason"] is None and base["host_run_wait"] == pytest.approx(0.0)


def test_a_neighbour_on_the_other_cores_is_contention_even_when_the_threads_never_wait(monkeypatch):
    # on the 2-vCPU development VM a busy loop on the other vCPU made a 1-thread mlp 1.5x slower with
    # the cell's thread never waiting: the other processes' cores are what shows it
    monkeypatch.setattr(contention.host_load, "cores", lambda: 2)

    def load(wait: float, other: float, error: float = 0.0):
        return type("Load", (), {"wait_share": wait, "other_cores": other, "other_cores_error": error,
                                 "wall_s": 0.05})()

    assert Screen.contended(load(0.001, 0.99))
    assert not Screen.contended(load(0.001, 0.3))  # under half a core: background
    assert not Screen.contended(load(0.001, 0.6, error=0.4))  # within the ticks' rounding of a short block
    assert Screen.contended(load(0.3, 0.0))  # waiting is contention whatever the other cores read
    monkeypatch.setattr(contention.host_load, "cores", lambda: 64)
    assert not Screen.contended(load(0.001, 4.0)) and Screen.contended(load(0.001, 8.0))  # a tenth of 64 cores
