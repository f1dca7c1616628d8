"""One table spec for every view of records: a figure reads the same in the terminal summary, the report, a
markdown export and the site, and every column shows a declared field in a format every view knows."""
from __future__ import annotations

import io
import re
from pathlib import Path

from harness.record.schema import CORE_SCHEMA
from harness.report.run_report import render_report
from harness.report.terminal_summary import print_summary
from harness.results.export import markdown
from harness.results.records import fill_relative_figures
from harness.results.table_spec import COLUMNS, FORMATS, REPORT, SITE, TERMINAL, VIEWS, backend_label, columns
from harness.site.data import ROW_COLUMNS, page_columns
from harness.testing import make_record, make_run_folder

REPO = Path(__file__).resolve().parents[1]


def _records() -> list[dict]:
    return fill_relative_figures([
        make_record(latency_p50_ms=2.0, accuracy=0.95, paired=False),
        make_record(method="quantize.dynamic_int8", method_kind="quantizer", latency_p50_ms=1.0, paired=True,
                    paired_speedup=1.9, speedup_ci_low=1.8, speedup_ci_high=2.05, model_bytes=100_000, accuracy=0.94,
                    precision_reached=True, cell_id="q"),
    ])


def test_every_column_shows_a_declared_field_in_a_known_format():
    for key, column in COLUMNS.items():
        assert column.key == key
        if column.record_field is not None:
            assert column.record_field in CORE_SCHEMA, (key, column.record_field)
        if column.format is not None:
            assert column.format in FORMATS, (key, column.format)
    for view, keys in VIEWS.items():
        assert len(keys) == len(set(keys)) and set(keys) <= set(COLUMNS), view


def test_the_site_draws_every_format_the_spec_names():
    script = (REPO / "harness" / "site" / "assets" / "leaderboard.js").read_text()
    table = re.search(r"var FORMATS = \{(.*?)\};", script, re.S).group(1)
    named = set(re.findall(r'"?([a-z0-9]+)"?:', table))
    assert set(FORMATS) <= named, set(FORMATS) - named
    assert [c["key"] for c in page_columns()] == list(VIEWS[SITE])
    assert set(ROW_COLUMNS) >= {c.key for c in columns(SITE)} - {"model", "method", "params", "batch", "status", "kind",
                                                                 "dataset", "backend", "seed"}


def test_a_paired_speedup_reads_the_same_in_every_view(tmp_path):
    records = _records()
    want = "1.90× [1.80, 2.05]"
    run = make_run_folder(tmp_path / "results" / "quick" / "r1", records)
    out = io.StringIO()
    print_summary(run, out)
    assert want in out.getvalue()
    assert want in markdown(run, records).replace("\\[", "[").replace("\\]", "]")
    page = render_report(records, {})
    assert '1.90× <span class="ci" title="95% interval from the paired blocks">[1.80, 2.05]</span>' in page
    shown = COLUMNS["speedup"].show(records[1])
    assert (shown.text, shown.detail, shown.tone) == ("1.90×", "[1.80, 2.05]", "better")


def test_a_slower_speedup_is_worse_only_when_its_interval_says_so():
    base = make_record(method="m", paired=True, speedup=0.95, speedup_ci_low=0.9, speedup_ci_high=1.02)
    assert COLUMNS["speedup"].show(base).tone == ""
    assert COLUMNS["speedup"].show({**base, "speedup_ci_high": 0.97}).tone == "worse"
    assert COLUMNS["speedup"].show({**base, "speedup_ci_low": None}).tone == "worse"  # no interval: the ratio says it
    assert COLUMNS["speedup"].show({**base, "status": "failed"}).null


def test_formats_read_milliseconds_ratios_and_deltas_one_way():
    assert [FORMATS["ms"](v) for v in (0.02721, 1.234, 45.67, 1234.5)] == ["0.0272", "1.23", "45.7", "1,234"]
    assert FORMATS["times"](1.9) == "1.90×" and FORMATS["signed"](-0.00001) == "+0.0000"
    assert FORMATS["int"](1_000_000) == "1000000" and FORMATS["bytes"](1536) == "1.5 KiB"


def test_a_backend_qualifier_comes_from_its_field_declaration():
    """``runtime_precision`` is the runtimes plugin's field, declared ``qualifies="backend"`` with f32 usual: the
    label says bf16 and not f32, and a field nobody declared that way never reaches the label."""
    r = make_record(backend="openvino", backend_params={}, runtime_precision="bf16")
    assert backend_label(r) == "openvino · bf16"
    assert backend_label({**r, "runtime_precision": "f32"}) == "openvino"
    assert backend_label({**r, "dtype": "float16"}) == "openvino · bf16"  # the gpu plugin's dtype qualifies nothing


def test_views_leave_out_columns_no_record_needs():
    records = _records()
    assert "ref" not in [c.key for c in columns(TERMINAL, records)]  # one backend: vs ref is the speedup
    assert "ppl" not in [c.key for c in columns(REPORT, records)]  # no language model
    two = records + [make_record(backend="onnxruntime", cell_id="o")]
    assert "ref" in [c.key for c in columns(TERMINAL, two)]


def test_a_column_of_one_field_is_headed_by_the_fields_declared_label():
    from harness.results.table_spec import declared_label

    for column in COLUMNS.values():
        if column.record_field is not None:
            assert column.label == declared_label(column.record_field), column.key
    assert declared_label("size_ratio") == "size ratio (×)" and declared_label("latency_p50_ms") == "p50 ms"
