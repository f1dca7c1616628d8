"""HTML building blocks shared by the run report and the published site: escaping, JSON that
cannot close its ``<script>``, the stylesheet, the script that draws embedded figures, the
plotly.js tag, and writing a page atomically.

Model names, params, errors and environment strings come from suites and plugins we do not
control, so every one of them goes through ``esc`` (text, attributes) or ``script_json``.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def esc(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute (quotes included)."""
    return html.escape("" if value is None else str(value), quote=True)


def script_json(text: str) -> str:
    """Make a JSON text safe inside <script>: nothing in it can close the tag or start markup."""
    for raw, safe in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                      ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, safe)
    return text


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:20px 0 4px}
.meta{margin:2px 0;color:#555}.note,.caption,.skip,.empty{color:#555;max-width:70em}
.caption{font-size:12.5px}.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;white-space:nowrap}
th,td{padding:4px 8px;border-bottom:1px solid #e3e3e3;text-align:left}
th{background:#f4f4f6;cursor:pointer;user-select:none;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.baseline td{background:#eef4ff;font-weight:600}tr.not-ok td{color:#777}
td.null{color:#aaa}td.worse,.worse-text{color:#c62828;font-weight:600}td.err{color:#a33}
.pill{display:inline-block;padding:0 7px;border-radius:9px;font-size:11.5px;color:#fff;background:#888}
.st-ok{background:#2e7d32}.st-failed{background:#c62828}.st-timeout{background:#ef6c00}.st-oom{background:#ad1457}.st-skipped{background:#757575}
.gate-fail{background:#fdecea;color:#c62828;padding:0 5px;border-radius:4px;font-weight:600}
.gate-pass{color:#2e7d32}
.noisy{background:#fff3cd;color:#8a6d00;padding:0 5px;border-radius:4px;font-size:11.5px}
.contended{background:#fde2e1;color:#9b1c1c;padding:0 5px;border-radius:4px;font-size:11.5px}
.imprecise{background:#e8eaf6;color:#3949ab;padding:0 5px;border-radius:4px;font-size:11.5px}
.ci{color:#666;font-size:11.5px}
.plot{width:100%;max-width:900px;height:420px}
table.training td{vertical-align:top}.params{white-space:normal;max-width:48em;color:#888;font-size:11px}
.arrow{margin-left:4px;color:#555}
"""


#: Draws every figure whose plotly JSON sits in a <script type="application/json" data-figure=ID>.
FIGURES_JS = """
function drawJsonFigures() {
  document.querySelectorAll("script[data-figure]").forEach(function (s) {
    var fig = JSON.parse(s.textContent);
    Plotly.newPlot(s.dataset.figure, fig.data, fig.layout, {displaylogo: false, responsive: true});
  });
}
"""


PLOTLY_MODES = ("inline", "cdn")


def plotly_script(mode: str = "inline") -> str:
    """The <script> that brings plotly.js: the whole bundle inline (the page works offline), or
    plotly.py's own CDN URL with a Subresource Integrity hash of the bundle it ships (the
    browser refuses a CDN file that differs from it)."""
    from plotly.offline import get_plotlyjs

    if mode == "inline":
        return f"<script>{get_plotlyjs()}</script>"
    if mode != "cdn":
        raise ValueError(f"plotly mode must be one of {PLOTLY_MODES}, not {mode!r}")
    from plotly.io._utils import plotly_cdn_url

    digest = base64.b64encode(hashlib.sha256(get_plotlyjs().encode("utf-8")).digest()).decode("ascii")
    return (f'<script charset="utf-8" src="{esc(plotly_cdn_url())}" integrity="sha256-{digest}" '
            f'crossorigin="anonymous"></script>')


def script_hash(code: str) -> str:
    """A CSP hash-source for an inline script whose text is exactly ``code``."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


@functools.lru_cache(maxsize=1)
def plotly_hash() -> str:
    from plotly.offline import get_plotlyjs

    return script_hash(get_plotlyjs())


def content_security_policy(scripts: list[str], *, plotly: str | None = None) -> str:
    """The page's Content-Security-Policy as a <meta> tag: it runs only its own inline ``scripts`` (by
    hash), plotly.js (inline by hash, the site's local copy, or plotly's CDN when ``plotly`` says so),
    and loads nothing else: no connections, frames, objects, or forms that leave the page. Styles may be
    inline (the page's own stylesheet, and plotly sets styles as it draws); images only from data: and
    blob: URLs (plotly's "download as png")."""
    sources = [script_hash(code) for code in scripts]
    if plotly is not None:
        sources.append(plotly_hash())  # inline, or unpacked from the page and inserted as a script
        sources.append("'self'")  # a run report inside a site loads the site's one plotly.min.js
        if plotly == "cdn":
            from plotly.io._utils import plotly_cdn_url

            sources.append(plotly_cdn_url())
    policy = ("default-src 'none'; script-src " + " ".join(sources) + "; style-src 'unsafe-inline'; "
              "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'; object-src 'none'")
    return f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">'


def write_atomic(target: Path, text: str) -> Path:
    """Write ``text`` to ``target`` through a temp file in the same folder and os.replace, so a
    reader (a browser, a publisher) never sees half a page; readable by all like any web page."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=f"{target.suffix}.tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a static host must be able to serve it
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


@functools.lru_cache(maxsize=1)
def _white_template() -> dict[str, Any]:
    import plotly.io as pio

    return pio.templates["plotly_white"].to_plotly_json()


def figure_json(traces: list[dict[str, Any]], layout: dict[str, Any]) -> str:
    """A plotly figure's JSON built from plain data: the same figure as ``go.Figure`` with
    ``template="plotly_white"`` gives, without its per-property validation and the deep copy of the
    template for every figure (which took about 40% of rendering a report). Traces name their
    ``type``; titles are ``{"text": ...}``. Numbers must be finite (JSON has no NaN)."""
    return json.dumps({"data": traces, "layout": {"template": _white_template(), **layout}},
                      separators=(",", ":"), allow_nan=False)
