"""host_other_cpu and contention: the CPU other processes took while a cell was measured, the
record's contended flag and the run's warning."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harness.measure.host_load import OtherCPU

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")

BURN = "import time\nt = time.time()\nwhile time.time() - t < 60: pass"


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.fixture
def burner():
    p = subprocess.Popen([sys.executable, "-c", BURN])
    time.sleep(0.3)  # past interpreter start-up
    yield p
    p.kill()
    p.wait()


@pytest.fixture
def burners():
    """A busy loop on every core: whatever its thread count, a cell's threads wait for a CPU."""
    import os

    ps = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(os.cpu_count() or 1)]
    time.sleep(0.3)
    yield ps
    for p in ps:
        p.kill()
        p.wait()


def test_a_busy_neighbour_shows_as_about_one_core(burner):
    with OtherCPU() as other:
        spin(1.0)  # our own work is not counted
    assert other.cores is not None and 0.6 < other.cores < 1.4


def test_our_own_threads_and_reaped_children_are_not_counted():
    with OtherCPU() as other:
        spin(0.5)
        subprocess.run([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 0.5: pass"],
                       check=True)
    assert other.cores is not None and other.cores < 0.3


def test_a_contended_cell_records_it_and_the_run_warns(burners, tmp_path, optbench_cache_dir, monkeypatch, optbench_runs_suites):
    import io

    import yaml

    from harness.results import records
    from harness.run.progress import Progress
    from harness.run.runner import Runner
    from harness.testing import make_tiny_suite

    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(optbench_cache_dir))
    suite = make_tiny_suite(model_params={"hidden": [32], "epochs": 1})
    suite["measure"] = {"batch_sizes": [1], "warmup": {"min_iters": 3, "min_seconds": 0.0},
                        "repeat": {"min_iters": 10, "min_seconds": 1.0}, "accuracy": False}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = io.StringIO()
    result = Runner(progress=Progress(stream=out)).run(path, tmp_path / "results")
    assert result.exit_code == 0
    (record,) = records.read_records(result.run_dir)
    assert record["host_other_cpu"] > 0.5
    assert record["contended"] is True and record["host_run_wait"] > 0.05
    assert record["contention_retries"] == 6  # the default re-measurements, all contended too
    assert "timed blocks were contended" in record["contended_reason"]
    assert "mlp · digits · baseline · cpu: contended at batch size 1: " in out.getvalue()
