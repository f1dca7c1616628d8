"""A run folder has one writer at a time, and optbench never writes through a link planted in it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.run.run_lock import RunLock


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, optbench_cache_dir, optbench_runs_suites):
    import yaml

    from harness.testing import make_tiny_suite
    folder = tmp_path_factory.mktemp("one-run")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(make_tiny_suite()))
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(folder / "tiny.yaml"), "--results",
                           str(folder / "results"), "-q"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OPTBENCH_CACHE_DIR": str(optbench_cache_dir)})
    assert done.returncode == 0, done.stderr
    (run_dir,) = (folder / "results").glob("tiny/*")
    return run_dir


@pytest.fixture
def finished_run(one_run, tmp_path):
    """A copy of one finished run for each test (each plants its own trouble in it)."""
    import shutil

    return Path(shutil.copytree(one_run, tmp_path / "run", symlinks=True))


def test_a_second_writer_is_refused_with_the_holders_pid(finished_run, cli, optbench_cache_dir, optbench_runs_suites):
    import os

    records = (finished_run / "records.jsonl").read_bytes()
    with RunLock(finished_run):  # this process plays the run that is still writing
        done = cli("run", "--resume", str(finished_run), env={"OPTBENCH_CACHE_DIR": str(optbench_cache_dir)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"is being written by another optbench (pid {os.getpid()}, since" in done.stderr
    assert (finished_run / "records.jsonl").read_bytes() == records
    again = cli("run", "--resume", str(finished_run), env={"OPTBENCH_CACHE_DIR": str(optbench_cache_dir)})
    assert again.returncode == 0, again.stderr  # the lock went with its holder


@pytest.mark.parametrize("planted", ["records.jsonl", "run.json", "cells/LOG"])
def test_resume_refuses_links_planted_in_the_run_folder(finished_run, cli, tmp_path, planted, optbench_cache_dir, optbench_runs_suites):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    if planted == "cells/LOG":
        target = next((finished_run / "cells").iterdir()) / "log.txt"
    else:
        target = finished_run / planted
    target.unlink()
    target.symlink_to(victim)
    done = cli("run", "--resume", str(finished_run), env={"OPTBENCH_CACHE_DIR": str(optbench_cache_dir)})
    assert done.returncode == 2 and "is a symbolic link" in done.stderr and "Traceback" not in done.stderr
    assert str(target) in done.stderr
    assert victim.read_text() == "precious\n"


def test_a_run_with_several_seeds_resumes(optbench_run, tiny_suite):
    """The run's suite.yaml copy held both `seed` and `seeds`, which --resume then refused."""
    suite = {**tiny_suite(), "seeds": [0, 1]}
    first = optbench_run(suite)
    assert first.exit_code == 0 and len({r["seed"] for r in first.records}) == 2
    again = optbench_run(None, resume=first.run_dir)
    assert again.exit_code == 0 and len(again.records) == len(first.records)
