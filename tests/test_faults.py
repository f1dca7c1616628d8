"""Faults a plugin can cause, through the real CLI with a real plugin distribution (``tests/faults``,
installed into a folder of its own so its entry point reaches only these tests): every cell ends with
its own status and error, nothing it started is left running, its log is capped and holds the crash's
stack, and Ctrl-C, once or twice, stops the run at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness.run import limits

HERE = Path(__file__).parent
FAULTS = HERE / "faults"


@pytest.fixture(scope="module")
def faults_env(tmp_path_factory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("faults") / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target), str(FAULTS)],
                   check=True, timeout=300, capture_output=True)
    return {"PYTHONPATH": os.pathsep.join([str(target), *filter(None, [os.environ.get("PYTHONPATH")])])}


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap it counts as gone)."""
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return " Z" not in state and " X" not in state


def pids(path: Path) -> list[int]:
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def suite_file(tmp_path: Path, **changes) -> Path:
    suite = yaml.safe_load((FAULTS / "faults.yaml").read_text().replace("PIDS", str(tmp_path / "pids.txt")))
    suite.update(changes)
    path = tmp_path / "faults.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]


def test_every_fault_costs_only_its_cell_and_a_resume_reruns_only_those(faults_env, cli, tmp_path, optbench_cache_dir, optbench_runs_suites):
    env = {**faults_env, "OPTBENCH_CACHE_DIR": str(optbench_cache_dir)}
    path = suite_file(tmp_path, execution={"timeout_s": 5, "memory_limit_mb": 2000, "log_limit_mb": 1})
    t0 = time.monotonic()
    done = cli("run", str(path), "--results", str(tmp_path / "results"), cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr  # cells failed; the run did not
    assert time.monotonic() - t0 < 120 and "Traceback" not in done.stderr
    (run_dir,) = (tmp_path / "results").glob("faults/*")
    records = records_of(run_dir)
    assert len(records) == 11  # the baseline and one per fault (two growths): none lost
    grown = sorted((r for r in records if r["method"] == "faults.grow"), key=lambda r: r["params"]["megabytes"])
    got = {r["method"]: r for r in records}

    def log(method: str) -> str:
        return (run_dir / "cells" / got[method]["cell_id"] / "log.txt").read_text(errors="replace")

    assert got["baseline"]["status"] == "ok"
    assert (got["faults.raise"]["status"], got["faults.raise"]["error"]) == ("failed",
                                                                            "RuntimeError: faults.raise: a plugin bug")
    for method, signame, fatal in (("faults.abort", "SIGABRT", "Aborted"),
                                   ("faults.segfault", "SIGSEGV", "Segmentation fault")):
        r = got[method]
        assert r["status"] == "failed" and signame in r["error"] and str(run_dir / "cells") in r["error"], r
        text = log(method)  # faulthandler: the Python stack of the crash, down to the plugin's line
        assert f"Fatal Python error: {fatal}" in text and "optbench_faults/__init__.py" in text, text[-2000:]
    assert got["faults.exit"]["status"] == "failed" and "exited with code 7" in got["faults.exit"]["error"]
    # a SIGKILL is told apart from the OOM killer's by the kernel's oom_kill count
    killed = got["faults.kill"]
    assert killed["status"] == "failed" and "killed by SIGKILL" in killed["error"], killed
    assert ("not by the OOM killer" if limits.oom_kills() is not None else "likely out of memory") in killed["error"]
    assert got["faults.hang"]["status"] == "timeout" and "timeout_s=5" in got["faults.hang"]["error"]
    assert got["faults.children"]["status"] == "ok"
    assert "the cell left processes running; they were killed" in log("faults.children")
    flood = run_dir / "cells" / got["faults.flood"]["cell_id"] / "log.txt"
    assert got["faults.flood"]["status"] == "ok" and flood.stat().st_size < 1.1 * 2**20
    assert "log capped at execution.log_limit_mb=1:" in flood.read_text()[-300:]
    assert grown[0]["status"] == "ok" and grown[0]["setup_peak_mb"] > 300 > grown[0]["host_peak_mb"], grown[0]
    oom = grown[1]
    assert oom["status"] == "oom" and "execution.memory_limit_mb=2000" in oom["error"], oom
    started = pids(tmp_path / "pids.txt")
    assert len(started) == 4 and not [p for p in started if alive(p)]  # hang's and children's sleepers

    before = {r["cell_id"]: (run_dir / "cells" / r["cell_id"] / "log.txt").stat().st_mtime_ns
              for r in records if r["status"] == "ok"}
    again = cli("run", "--resume", str(run_dir), cwd=tmp_path, env=env)
    assert again.returncode == 1, again.stderr
    after = records_of(run_dir)
    rerun = [r["method"] for r in after[len(records):]]
    assert sorted(rerun) == sorted(r["method"] for r in records if r["status"] != "ok")
    assert all((run_dir / "cells" / cid / "log.txt").stat().st_mtime_ns == t for cid, t in before.items())
    assert not [p for p in pids(tmp_path / "pids.txt") if alive(p)]


def test_ctrl_c_in_a_hung_cell_stops_the_run_and_everything_it_started(faults_env, tmp_path, optbench_cache_dir, optbench_runs_suites):
    """Pressed twice, 0.2 s apart, as an impatient user does (once is tests/test_runner.py's Ctrl-C test)."""
    presses = 2
    path = suite_file(tmp_path, methods=[{"name": "faults.hang", "params": {"pid_file": str(tmp_path / "pids.txt")}}],
                      execution={"timeout_s": 300})
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", str(path), "--results", str(results)],
        env={**os.environ, **faults_env, "OPTBENCH_CACHE_DIR": str(optbench_cache_dir)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(pids(tmp_path / "pids.txt")) < 2:
        time.sleep(0.05)
    assert len(pids(tmp_path / "pids.txt")) == 2, "the hang cell never started"
    t0 = time.monotonic()
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10 and proc.returncode == 130, err
    (run_dir,) = results.glob("faults/*")
    assert f"optbench run --resume {run_dir}" in err and "Traceback" not in err, err
    assert not [p for p in pids(tmp_path / "pids.txt") if alive(p)]
    assert json.loads((run_dir / "run.json").read_text())["interrupted_at"]


def test_a_sigkill_is_the_oom_killers_only_when_the_kernels_count_rose():
    """The OOM killer and a user's kill -9 both end a cell with SIGKILL; /proc/vmstat's oom_kill count
    before and after the cell tells them apart, and an unknown count only hints."""
    from harness.run.executor import describe_exit

    status, error = describe_exit(-signal.SIGKILL, (3, 4))
    assert status == "oom" and "OOM killer killed the cell process (its oom_kill count went 3 -> 4" in error
    assert "execution.memory_limit_mb" in error
    assert describe_exit(-signal.SIGKILL, (3, 3)) == (
        "failed", "cell process killed by SIGKILL, not by the OOM killer (the kernel's oom_kill count did not change)")
    assert describe_exit(-signal.SIGKILL, (None, None))[1].endswith("(likely out of memory: the kernel's OOM killer "
                                                                    "sends SIGKILL)")
    assert describe_exit(-signal.SIGSEGV, (3, 4)) == ("failed", "cell process killed by SIGSEGV")
    assert describe_exit(7) == ("failed", "cell process exited with code 7 before writing its result")
    if os.path.exists("/proc/vmstat"):
        assert isinstance(limits.oom_kills(), int)
