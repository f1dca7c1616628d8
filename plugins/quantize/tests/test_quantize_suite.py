"""The quantizers through the harness: one real suite, the plugin loaded from its entry point.

One suite rather than one per method: each run pays for the executor's start-up and
the baseline cell, and the plugin's whole test folder has to stay under 40 s.
"""
from __future__ import annotations

from typing import Any


def check_dynamic_int8(base: dict[str, Any], records: list[dict[str, Any]]) -> None:
    by_dtype = {r["params"]["dtype"]: r for r in records}
    assert by_dtype["qint8"]["size_ratio"] > 2.5
    assert abs(by_dtype["qint8"]["accuracy_delta"]) < 0.05
    assert by_dtype["float16"]["accuracy"] > base["accuracy"] - 0.02
    assert by_dtype["qint8"]["flops"] == base["flops"]  # same work, counted from layer shapes


def check_static_int8(base: dict[str, Any], records: list[dict[str, Any]]) -> None:
    (static,) = records
    assert static["size_ratio"] > 2.5
    assert abs(static["accuracy_delta"]) <= 0.03


def check_uniform(base: dict[str, Any], records: list[dict[str, Any]]) -> None:
    by_bits = {r["params"]["bits"]: r for r in records}
    assert set(by_bits) == {4, 8}
    for bits, r in by_bits.items():
        assert abs(r["accuracy_delta"]) <= (0.01 if bits == 8 else 0.05)
        # model_bytes is the effective size the method reported once the core merges ctx.report
        # facts into records; before that it is the float32 state_dict, the same as the baseline's.
        assert r["model_bytes"] <= base["model_bytes"]
        if "bits_per_param" in r and r["bits_per_param"] is not None:
            assert bits < r["bits_per_param"] < bits + 0.5
            assert r["model_bytes"] < base["model_bytes"]


def test_quantizers_in_one_suite(optbench_run, tiny_suite):
    suite = tiny_suite("quantize.static_int8", {}, model_params={"epochs": 5})
    suite["methods"] += [
        {"name": "quantize.uniform", "params": {"bits": [4, 8]}},
        {"name": "quantize.dynamic_int8", "params": {"dtype": ["qint8", "float16"]}},
    ]
    run = optbench_run(suite)
    assert run.exit_code == 0, [r["error"] for r in run.records]
    assert [r["status"] for r in run.records] == ["ok"] * 6
    (base,) = run.by_method("baseline")
    check_static_int8(base, run.by_method("quantize.static_int8"))
    check_uniform(base, run.by_method("quantize.uniform"))
    check_dynamic_int8(base, run.by_method("quantize.dynamic_int8"))
