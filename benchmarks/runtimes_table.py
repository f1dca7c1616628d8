"""Issue 15's table from a run of suites/runtimes.yaml: each (model, batch) across torch eager fp32,
torch dynamic int8, ONNX Runtime fp32 and its int8 quantizers, and OpenVINO at f32, at bf16 and its
NNCF int8, with each row's p50, its speedup against the torch fp32 baseline (``reference_speedup``),
its size ratio, accuracy and fidelity (agreement and cosine against its own backend's baseline).

    optbench run suites/runtimes.yaml          # then
    python benchmarks/runtimes_table.py results/runtimes/<run-id>

Run the suite alone: a figure taken while anything else loads the machine means nothing. A row
marked "contended" was timed while other processes took the CPU, even after re-measuring.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.results.records import fill_relative_figures, read_records

#: (backend, backend param precision or None, method) -> column label, in the table's order.
ROWS = [
    ("cpu", None, "baseline", "torch eager fp32"),
    ("cpu", None, "quantize.dynamic_int8", "torch dynamic int8"),
    ("onnxruntime", None, "baseline", "ONNX Runtime fp32"),
    ("onnxruntime", None, "onnx.quantize_dynamic", "ONNX Runtime dynamic int8"),
    ("onnxruntime", None, "onnx.quantize_static", "ONNX Runtime static int8 (QDQ)"),
    ("openvino", None, "baseline", "OpenVINO f32"),
    ("openvino", "bf16", "baseline", "OpenVINO bf16"),
    ("openvino", None, "openvino.quantize", "OpenVINO int8 (NNCF)"),
    ("openvino", "bf16", "openvino.quantize", "OpenVINO int8 (NNCF), rest bf16"),
]


def fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def main(run_dir: Path) -> None:
    records = fill_relative_figures(read_records(run_dir))
    env = json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").exists() else {}
    cpu = env.get("cpu") or {}
    flags = set(cpu.get("flags") or [])
    print(f"run {run_dir.name}: {cpu.get('model_name') or 'CPU ?'} (family {cpu.get('family')} model "
          f"{cpu.get('model')}; avx512_bf16 {'avx512_bf16' in flags}, amx_bf16 {'amx_bf16' in flags}), "
          f"torch {env.get('torch')}, {len(records)} records")
    keys = sorted({(r["model"], r["batch_size"]) for r in records}, key=lambda k: (str(k[0]), k[1]))
    for model, batch in keys:
        print(f"\n{model}, batch {batch}")
        print("| | p50 ms | vs torch fp32 | size ratio | accuracy | agreement | cosine | ran in | note |")
        print("|---|---|---|---|---|---|---|---|---|")
        for backend, precision, method, label in ROWS:
            matches = [r for r in records if r["model"] == model and r["batch_size"] == batch
                       and r["backend"] == backend and r["method"] == method
                       and (r.get("backend_params") or {}).get("precision") in ((precision,) if precision
                                                                               else (None, "f32"))]
            if not matches:
                continue
            r = matches[-1]
            if r["status"] != "ok":
                print(f"| {label} | {r['status']} | | | | | | | {(r.get('error') or '')[:90]} |")
                continue
            ran = r.get("runtime_precision") or ("fp32" if backend == "cpu" else "")
            note = "contended" if r.get("contended") else ""
            print(f"| {label} | {fmt(r['latency_p50_ms'], '.3f')} | {fmt(r.get('reference_speedup'), '.2f')} | "
                  f"{fmt(r.get('size_ratio'), '.2f')} | {fmt(r.get('accuracy'), '.4f')} | "
                  f"{fmt(r.get('agreement'), '.4f')} | {fmt(r.get('cosine'), '.5f')} | {ran} | {note} |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/runtimes_table.py RUN_DIR")
    main(Path(sys.argv[1]))
