"""The summary table ``optbench run`` ends with (harness.report.terminal_summary): what each row
shows, the flags, hostile record text shown literally, plain fixed-width output off a terminal,
and one real run through the CLI (with --resume, --no-summary and ``report --summary``)."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from harness.cli import main
from harness.report.terminal_summary import PLAIN_WIDTH, print_summary, summary_table
from harness.results.records import append_records, fill_relative_figures
from harness.testing import make_record, make_tiny_suite

NULL = "—"


def record(**over: Any) -> dict[str, Any]:
    return make_record(**{"paired": False, **over})


def paired(**over: Any) -> dict[str, Any]:
    """A method timed paired with the baseline: its speedup and interval are in the record."""
    return record(**{"method": "quantize.dynamic_int8", "method_kind": "quantizer", "latency_p50_ms": 1.0,
                     "paired": True, "paired_speedup": 1.9, "speedup_ci_low": 1.8, "speedup_ci_high": 2.05,
                     "model_bytes": 100_000, "accuracy": 0.94, "precision_reached": True, **over})


def write_run(tmp_path: Path, records: list[dict[str, Any]]) -> Path:
    run = tmp_path / "results" / "quick" / "r1"
    run.mkdir(parents=True)
    append_records(run / "records.jsonl", records)
    return run


def plain(tmp_path: Path, records: list[dict[str, Any]]) -> str:
    """The summary as it goes to a pipe (not a terminal)."""
    out = io.StringIO()
    print_summary(write_run(tmp_path, records), out)
    return out.getvalue()


def row(output: str, method: str) -> str:
    """The (first) line of the table that starts with this method."""
    return next(line for line in output.splitlines() if line.strip().startswith(method))


def words(output: str) -> str:
    """The output with every run of blanks and line breaks as one space (cells wrap)."""
    return " ".join(output.split())


def test_rows_show_the_records_figures_and_the_baseline_reads_one(tmp_path):
    out = plain(tmp_path, [record(), paired()])
    assert "quick · run r1 · digits · cpu: 2 records (2 ok)" in out
    assert "mlp · batch 1" in out
    base = row(out, "baseline")
    assert re.search(r"baseline\s+2\.00\s+1\.00×\s+1\.00×\s+\+0\.0000\s*$", base), base
    assert "[" not in base  # the baseline's speedup is exactly 1: no interval
    q = row(out, "quantize.dynamic_int8")
    # p50, the paired speedup with its interval (the record's, not recomputed), size ratio, Δ accuracy
    assert re.search(r"1\.00\s+1\.90× \[1\.80, 2\.05\]\s+4\.00×\s+-0\.0100", q), q
    assert out.splitlines()[-1] == f"records: {tmp_path / 'results' / 'quick' / 'r1' / 'records.jsonl'}"


def test_groups_per_model_and_batch_size_in_the_runs_order(tmp_path):
    records = [record(model="small-cnn"), record(model="small-cnn", batch_size=64), record(),
               paired(model="small-cnn", batch_size=64), paired()]
    out = plain(tmp_path, records)
    heads = [line.strip() for line in out.splitlines() if "· batch" in line]
    assert heads == ["small-cnn · batch 1", "small-cnn · batch 64", "mlp · batch 1"]
    lines = out.splitlines()
    at = lines.index(next(line for line in lines if "small-cnn · batch 64" in line))
    assert lines[at + 1].strip().startswith("baseline") and lines[at + 2].strip().startswith("quantize")


def test_dataset_and_backend_that_vary_are_named_per_group(tmp_path):
    out = plain(tmp_path, [record(), record(backend="cuda", cell_id="c2")])
    assert "mlp · cpu · batch 1" in out and "mlp · cuda · batch 1" in out
    assert "· digits: 2 records" in out  # the shared dataset is said once, in the title


def rendered(records: list[dict[str, Any]]) -> str:
    """The table as plain text, 120 columns wide, from records whose relative figures are filled (no run folder)."""
    console = Console(file=io.StringIO(), width=PLAIN_WIDTH, color_system=None, markup=False, emoji=False,
                      highlight=False)
    console.print(summary_table(fill_relative_figures(records)))
    return console.file.getvalue()


REF = {"reference_backend": "cpu", "reference_backend_params": {"threads": 1}}
CPU = {**REF, "backend_params": {"threads": 1}}
OV_BF16 = {**REF, "backend": "openvino", "runtime": "openvino", "runtime_precision": "bf16"}


def test_several_backends_rank_against_the_reference_baseline():
    out = rendered([record(**CPU), paired(**CPU),
                    record(**REF, backend="onnxruntime", runtime="onnxruntime", runtime_precision="f32",
                           latency_p50_ms=1.6, cell_id="ort"),
                    record(**OV_BF16, latency_p50_ms=5.0, cell_id="ov"),
                    paired(**OV_BF16, latency_p50_ms=0.8, cell_id="ov-q"),
                    record(**OV_BF16, method="prune.magnitude", status="failed", error="boom", latency_p50_ms=None,
                           cell_id="ov-p")])
    head = next(line for line in out.splitlines() if "speedup [95% CI]" in line)
    assert re.search(r"speedup \[95% CI\]\s+vs ref\s+size", head), head
    # the precision the runtime ran in is in the group's backend label; f32 is the norm and not said
    groups = [line.strip() for line in out.splitlines() if "· batch" in line]
    assert groups == ["mlp · cpu(threads=1) · batch 1", "mlp · onnxruntime · batch 1", "mlp · openvino · bf16 · batch 1"]
    lines = out.splitlines()
    at = {g: next(i for i, line in enumerate(lines) if line.strip() == g) for g in groups}
    # on the reference backend it is the speedup (paired, as recorded); elsewhere the cpu baseline's 2.0 ms / p50
    assert re.search(r"baseline\s+2\.00\s+1\.00×\s+1\.00×\s+1\.00×", lines[at[groups[0]] + 1])
    assert re.search(r"1\.90× \[1\.80, 2\.05\]\s+1\.90×\s+4\.00×", lines[at[groups[0]] + 2])
    assert re.search(r"baseline\s+1\.60\s+1\.00×\s+1\.25×\s+1\.00×", lines[at[groups[1]] + 1])
    assert re.search(r"baseline\s+5\.00\s+1\.00×\s+0\.40×\s+1\.00×", lines[at[groups[2]] + 1])
    assert re.search(r"0\.800\s+1\.90× \[1\.80, 2\.05\]\s+2\.50×\s+4\.00×", lines[at[groups[2]] + 2])
    assert re.search(rf"prune\.magnitude(\s+{NULL}){{5}}\s+failed: boom", lines[at[groups[2]] + 3])
    legend = words(out)
    assert ("vs ref: baseline p50 on the reference backend (cpu(threads=1)) / this p50, same model, dataset, seed "
            "and batch size") in legend and "no interval" in legend


def test_one_backend_has_no_vs_ref_column_but_says_its_precision():
    out = rendered([record(**OV_BF16), paired(**OV_BF16)])
    assert "vs ref" not in out and "· digits · openvino · bf16: 2 records" in out  # the shared backend, in the title
    assert re.search(r"1\.00\s+1\.90× \[1\.80, 2\.05\]\s+4\.00×\s+-0\.0100\s*$", row(out, "quantize")), out
    # records from before reference_speedup, on two backends: the column, empty, and the legend says why
    old = rendered([record(), record(backend="cuda", cell_id="c2")])
    assert re.search(rf"baseline\s+2\.00\s+1\.00×\s+{NULL}\s+1\.00×", row(old, "baseline")), old
    assert "reference backend (none named in these records)" in words(old)


def test_a_failed_cell_shows_its_status_and_the_start_of_its_error(tmp_path):
    error = "cell process exited with code 3 before writing its result; see " + "/x" * 80 + "/log.txt\nmore"
    out = plain(tmp_path, [record(), record(method="prune.magnitude", status="failed", error=error,
                                            latency_p50_ms=None, accuracy=None),
                           record(method="test.hang", status="timeout", error="timeout_s=4", latency_p50_ms=None),
                           record(method="test.skip", status="skipped", error="needs a GPU", latency_p50_ms=None)])
    assert "4 records (1 ok, 1 failed, 1 timeout, 1 skipped)" in out
    failed = row(out, "prune.magnitude")
    assert re.search(rf"prune\.magnitude\s+{NULL}\s+{NULL}\s+{NULL}\s+{NULL}\s+failed: cell process exited", failed)
    assert "more" not in out and "…" in out  # first line only, cut short
    assert "timeout: timeout_s=4" in row(out, "test.hang")
    assert "skipped: needs a GPU" in row(out, "test.skip")


def test_flags_noisy_contended_imprecise_and_failed_gate(tmp_path):
    out = plain(tmp_path, [record(), paired(noisy=True, contended=True, contended_reason="2.1 other cores busy",
                                            precision_reached=False, passes_gate=False)])
    assert re.search(r"-0\.0100\s+noisy, contended, imprecise, fails gate\s*$", row(out, "quantize")), out
    assert ("contended: 1 of 2 records were timed while other processes disturbed the machine, even after "
            "re-measuring; for example: 2.1 other cores busy") in words(out)
    # false, or absent (records from before the field existed), raises no flag
    out = plain(tmp_path / "b", [record(), {k: v for k, v in paired().items() if not k.startswith("contended")}])
    assert re.search(r"-0\.0100\s*$", row(out, "quantize")), out


def test_missing_figures_show_a_dash_and_fidelity_stands_in_for_accuracy(tmp_path):
    out = plain(tmp_path, [record(accuracy=None, agreement=1.0),
                           record(method="share.kmeans", latency_p50_ms=None, model_bytes=None, accuracy=None,
                                  agreement=None, cosine=None),
                           record(method="lowrank.svd", accuracy=None, agreement=0.987),
                           record(method="quantize.embed", accuracy=None, cosine=0.99991)])
    assert re.search(rf"share\.kmeans\s+{NULL}\s+{NULL}\s+{NULL}\s+{NULL}\s*$", row(out, "share.kmeans"))
    assert "agr 0.9870" in row(out, "lowrank.svd") and "cos 0.9999" in row(out, "quantize.embed")
    assert "agr 1.0000" in row(out, "baseline")


def test_an_unpaired_speedup_is_shown_without_an_interval(tmp_path):
    out = plain(tmp_path, [record(), record(method="compile.inductor", latency_p50_ms=1.0)])
    assert re.search(r"1\.00\s+2\.00×\s+1\.00×", row(out, "compile.inductor"))  # 2.0 / 1.0, from the baseline


def test_training_cells_show_their_time_to_train_and_target(tmp_path):
    out = plain(tmp_path, [record(method="optim.sgd", method_kind="optimizer", train={"epochs": 3}, train_time_s=12.3,
                                  time_to_target_s=4.5, target_accuracy=0.9, seed=0),
                           record(method="optim.adam", method_kind="optimizer", train={"epochs": 3},
                                  train_time_s=10.0, target_accuracy=0.9, diverged=True, seed=1, cell_id="adam1")])
    assert "trained 12.3 s, target at 4.50 s" in row(out, "optim.sgd seed 0")
    assert "diverged, trained 10.0 s, target never" in row(out, "optim.adam seed 1")


HOSTILE = "[bold red]x\x1b[31m:smile:\u202e"


def test_hostile_record_text_is_shown_literally(tmp_path):
    records = [record(model=HOSTILE), paired(model=HOSTILE, params={"p": HOSTILE}, status="failed",
                                             error=HOSTILE + "\x1b[2J", contended=True, contended_reason=HOSTILE),
               record(model=HOSTILE, method="x", method_id="lone\udc80surrogate")]
    out = plain(tmp_path, records)
    assert "\x1b" not in out and "\u202e" not in out and "😄" not in out
    shown = r"[bold red]x\x1b[31m:smile:\u202e"
    assert "lone\\udc80surrogate" in out
    # wide enough not to wrap; on a colour terminal, so only rich's own styles are escape codes
    console = Console(file=io.StringIO(), width=400, force_terminal=True, color_system="truecolor")
    console.print(summary_table(fill_relative_figures(records)))
    coloured = console.file.getvalue()
    text = re.sub("\x1b\\[[0-9;]*m", "", coloured)  # rich's styles off; an ESC of a record would stay
    assert "\x1b" not in text and "\u202e" not in text and "😄" not in text
    assert f"{shown} · batch 1" in text and f"quantize.dynamic_int8 p={shown}" in text
    assert f"failed: {shown}\\x1b[2J, contended" in text and f"for example: {shown}" in text
    assert "[bold red]" in coloured.replace("\x1b[1;31m", "")  # the markup was not read as a style


def test_off_a_terminal_the_output_is_plain_fixed_width_text(tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "40")
    long_params = {f"param_{i}": "a-rather-long-value" for i in range(8)}
    out = plain(tmp_path, [record(), paired(params=long_params, noisy=True, contended=True,
                                            contended_reason="other processes used 1.5 cores for a while",
                                            precision_reached=False, passes_gate=False)])
    assert "\x1b" not in out
    lines = out.splitlines()
    assert max(map(len, lines[:-1])) <= PLAIN_WIDTH and max(map(len, lines)) > 80  # the width is 120, not $COLUMNS
    assert all(line == line.rstrip() for line in lines)


def test_an_empty_run_says_so(tmp_path):
    run = tmp_path / "results" / "quick" / "r1"
    run.mkdir(parents=True)
    (run / "records.jsonl").write_text("")
    out = io.StringIO()
    print_summary(run, out)
    assert "quick · run r1: no records (no cell has finished)" in out.getvalue()


def test_optbench_run_ends_with_the_table_then_the_records_and_the_report(cli, tmp_path, optbench_cache_dir,
                                                                           monkeypatch, capsys, optbench_runs_suites):
    suite = tmp_path / "summary.yaml"
    suite.write_text(yaml.safe_dump(make_tiny_suite("prune.magnitude", {"sparsity": [0.5]}, name="summary")))
    env = {"OPTBENCH_CACHE_DIR": str(optbench_cache_dir)}
    done = cli("run", str(suite), "--results", str(tmp_path / "results"), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "\x1b" not in out  # captured: not a terminal
    lines = out.strip().splitlines()
    report = Path(lines[-1])
    assert report.name == "report.html" and report.exists()  # still the last line, for scripts
    assert lines[-2] == f"records: {report.parent / 'records.jsonl'}"
    assert f"summary · run {report.parent.name} · digits" in out and "2 records (2 ok)" in out
    assert re.search(r"^\s+baseline\s+[\d.]+\s+1\.00×\s+1\.00×", out, re.MULTILINE), out
    pruned = row(out, "prune.magnitude")
    records = [json.loads(line) for line in (report.parent / "records.jsonl").read_text().splitlines()]
    mine = next(r for r in records if r["method"] == "prune.magnitude")
    assert mine["paired"] is True, mine  # so the speedup comes with the pairs' interval, as recorded
    assert f"{mine['speedup']:.2f}× [{mine['speedup_ci_low']:.2f}, {mine['speedup_ci_high']:.2f}]" in pruned, out

    # --resume with nothing left to run (in this process: no cell starts) ends with the same table
    monkeypatch.setenv("OPTBENCH_CACHE_DIR", str(optbench_cache_dir))
    capsys.readouterr()
    assert main(["run", "--resume", str(report.parent)]) == 0
    again = capsys.readouterr().out
    assert row(again, "prune.magnitude") == pruned and again.strip().splitlines()[-1] == str(report)
    for flag in ("--no-summary", "-q"):
        assert main(["run", "--resume", str(report.parent), flag]) == 0
        assert capsys.readouterr().out == f"{report}\n"


def test_optbench_report_summary_prints_the_table(tmp_path, capsys):
    run = write_run(tmp_path, [record(), paired()])
    assert main(["report", str(run), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "1.90× [1.80, 2.05]" in row(out, "quantize") and out.strip().splitlines()[-1] == str(run / "report.html")
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().out == f"{run / 'report.html'}\n"


def test_a_table_that_cannot_be_drawn_does_not_hide_the_report(tmp_path, capsys, monkeypatch):
    import harness.report.terminal_summary as summary

    def broken(run_dir, stream=None):
        raise ValueError("a bug")

    monkeypatch.setattr(summary, "print_summary", broken)
    run = write_run(tmp_path, [record()])
    assert main(["report", str(run), "--summary"]) == 0
    done = capsys.readouterr()
    assert done.out == f"{run / 'report.html'}\n" and "no summary table (ValueError: a bug)" in done.err


def test_language_model_rows_group_by_prompt_length_and_show_perplexity_drift_and_generation(tmp_path):
    lm = {"model": "tiny-lm", "dataset": "python-docs", "accuracy": None, "new_tokens": 64,
          "perplexity_tokens": 1000}
    gen = {"ttft_p50_ms": 9.88, "tpot_p50_ms": 3.555, "decode_tokens_per_s": 281.2}
    records = [record(**lm, prompt_tokens=64, perplexity=11.666, kl_div=0.0, **gen),
               record(**lm, prompt_tokens=256, perplexity=11.666, kl_div=0.0, cell_id="tiny-lm-baseline-{}", **gen),
               paired(**lm, prompt_tokens=64, perplexity=13.09, kl_div=0.0806, **gen)]
    out = words(plain(tmp_path, records))
    assert "tiny-lm · batch 1 · prompt 64" in out and "tiny-lm · batch 1 · prompt 256" in out
    assert "ppl 13.09 kl 0.081" in out and "ppl 11.67 kl 0" in out
    assert "TTFT 9.88 ms, TPOT 3.56 ms, 281 tok/s" in out
    assert "ppl is the perplexity on the held-out text" in out  # the legend says what they are
