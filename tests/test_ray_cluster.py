"""The Ray executor against a real cluster: a head started with `ray start --head`, joined by
address, as a user with an existing cluster would run a suite (the other Ray tests start a
local instance inside the test process instead)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cleans up through /proc")]

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kill_session(sid: int) -> None:
    """SIGKILL every process of the head's session, and nothing else on the machine
    (`ray stop` would also stop any other Ray instance the developer runs)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # after the ")": state, ppid, pgrp, session
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray-head")
    port = _free_port()
    # A throwaway single-machine cluster: token authentication off, for it and its driver only.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    log = tmp / "head.log"
    with log.open("w") as out:
        head = subprocess.Popen(
            ["ray", "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={tmp / 'ray'}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start --head did not come up:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        _kill_session(head.pid)
        head.wait(30)


@pytest.mark.parametrize("how", ["host:port", "auto"])
def test_a_suite_runs_on_an_existing_cluster(how, ray_head, tmp_path, optbench_cache_dir):
    head, env = ray_head
    address = head if how == "host:port" else "auto"
    if how == "auto":
        env = {**env, "RAY_ADDRESS": head}  # what `auto` joins first
    suite = {
        "name": "on-cluster",
        "datasets": ["digits"],
        "models": [{"name": "mlp", "params": {"hidden": [32], "epochs": 2}}],
        # joining by "auto" needs one cell to show it worked; the full matrix runs on host:port
        "methods": [{"name": "prune.magnitude", "params": {"sparsity": [0.5, 0.9]}}] if how == "host:port" else [],
        "backends": ["cpu"],
        "measure": {"batch_sizes": [1], "warmup": {"min_iters": 3, "min_seconds": 0.0},
                    "repeat": {"min_iters": 5, "min_seconds": 0.0}},
        "execution": {"executor": "ray", "address": address, "timeout_s": 120},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(path), "--results", str(tmp_path / "results"),
                           "-q"], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**env, "OPTBENCH_CACHE_DIR": str(optbench_cache_dir)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "results" / "on-cluster").iterdir()
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert len(records) == (3 if how == "host:port" else 1) and all(r["status"] == "ok" for r in records)
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["executor"] == "ray" and meta["execution"]["address"] == address
    assert [n["CPU"] for n in meta["execution"]["nodes"]] == [2.0]  # the head's resources, not this machine's
