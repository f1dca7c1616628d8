"""Labels and number formats shared by every view of records: the run report, the site,
exports and ``optbench compare``, so a method or a figure reads the same everywhere.

Values come from records.jsonl, which a plugin or a hand edit may have filled with
anything: every function here accepts any value and never raises on one.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

NULL = "—"

# C0 controls (ESC among them), DEL, C1 controls, and the bidirectional overrides and isolates
# that reorder what a terminal or a page shows ("Trojan source").
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(value: Any, keep: str = "") -> str:
    """``str(value)`` with every control character written out as an escape ("\\x1b", "\\x07",
    "\\u202e"), so text from a record or env.json cannot drive a terminal (clear it, retitle it,
    move the cursor, reorder a line): an escape sequence's ESC becomes four visible characters and
    the rest of it plain text. Characters in ``keep`` (say "\\n" where lines are structure) stay."""
    text = value if isinstance(value, str) else str(value)
    if keep:
        return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
    return _CONTROL.sub(_escape, text)


def fmt_number(v: Any, spec: str) -> str:
    """A finite number formatted with ``spec``; "—" for null, NaN or anything not a number."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return NULL
    return format(v, spec)


def fmt_ms(v: Any) -> str:
    """Milliseconds with about three significant digits (0.0412, 1.23, 45.6, 1,234)."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return NULL
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:#.3g}"


def fmt_params(params: Any) -> str:
    """"k=v, k=v"; a pipeline as "step(params) > step(params)"."""
    if not params:
        return ""
    if not isinstance(params, dict):
        return str(params)
    steps = params.get("steps")
    if isinstance(steps, list) and set(params) == {"steps"}:
        return " > ".join(f"{s.get('name')}({fmt_params(s.get('params'))})" for s in steps if isinstance(s, dict))

    def val(v: Any) -> str:
        return v if isinstance(v, str) else json.dumps(v, default=str)
    return ", ".join(f"{k}={val(v)}" for k, v in params.items())


def method_label(r: dict[str, Any]) -> str:
    """The method with its params (and its id when the suite named it): "prune.magnitude sparsity=0.5"."""
    name = str(r.get("method_id") or r.get("method"))
    params = fmt_params(r.get("params"))
    return f"{name} {params}" if params else name


def variant_label(r: dict[str, Any], key: str) -> str:
    """A dataset or backend with its non-null params: "cpu(threads=1)"."""
    params = r.get(f"{key}_params") or {}
    params = {k: v for k, v in params.items() if v is not None} if isinstance(params, dict) else {}
    name = str(r.get(key))
    return f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name


def finite(value: Any) -> float | None:
    """A finite number or None, so a stray NaN/inf or a string never reaches the page as a figure."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def fmt_float(v: float) -> str:
    """Three or so significant digits, without switching to exponent notation for big values."""
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"


def batch_label(r: dict[str, Any]) -> str:
    """The batch size, and a generation record's prompt length: "4", "4 · prompt 128"."""
    b, prompt = r.get("batch_size"), r.get("prompt_tokens")
    shown = str(b) if isinstance(b, int) and not isinstance(b, bool) else NULL
    return f"{shown} · prompt {prompt}" if isinstance(prompt, int) and not isinstance(prompt, bool) else shown


def fmt_generation(r: dict[str, Any]) -> str:
    """A generation record's own figures: "TTFT 2.37 ms, TPOT 0.920 ms, 1087 tok/s"; "" for others."""
    ttft, tpot, tps = (finite(r.get(k)) for k in ("ttft_p50_ms", "tpot_p50_ms", "decode_tokens_per_s"))
    if ttft is None:
        return ""
    parts = [f"TTFT {fmt_ms(ttft)} ms"]
    if tpot is not None:
        parts.append(f"TPOT {fmt_ms(tpot)} ms")
    if tps is not None:
        parts.append(f"{tps:.0f} tok/s")
    return ", ".join(parts)
