"""The bench's report.html: its tables (click a header to sort by that column), the images of every method for the
same seeds, and its plots. Self-contained: every image is embedded."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from PIL import Image

from erasekit.core.files import write_text
from erasekit.report.html import STYLE

SORT = """<script>
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.style.cursor = "pointer";
  th.title = "sort by this column";
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], rows = Array.from(body.rows);
    var down = th.dataset.order !== "desc";
    th.dataset.order = down ? "desc" : "asc";
    function key(r) { var t = r.cells[col].textContent, v = parseFloat(t); return isNaN(v) ? t : v; }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b), c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0)
        : (typeof x === "number" ? -1 : 1);
      return down ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
</script>"""


def _src(png: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


def _table(table_id: str, heads: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def write_bench_report(
    out: str | Path,
    title: str,
    note: str,
    tables: list[tuple[str, str, list, list]],
    grids: list[tuple[str, str, list[tuple[str, Path]]]],
    figures: list[tuple[str, Path]],
) -> Path:
    """`tables`: (id, caption, headers, rows of text); `grids`: (concept, what the columns show, [(model label,
    png)]) with every model's images of the same prompts and seeds; `figures`: (caption, png)."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>",
    ]
    for table_id, caption, heads, body in tables:
        parts += [f"<h2>{html.escape(caption)}</h2>", _table(table_id, heads, body)]
    for caption, png in figures:
        parts.append(
            f'<h2>{html.escape(caption)}</h2><img class="plot" src="{_src(png)}" '
            f'alt="{html.escape(caption)}" style="image-rendering:auto;max-width:100%">'
        )
    if grids:
        parts.append("<h2>Images: every model, the same prompts and seeds</h2>")
    for concept, what, images in grids:
        parts.append(f"<h3>{html.escape(concept)}</h3><p>{html.escape(what)}</p><table class='grid'>")
        for label, png in images:
            with Image.open(png) as im:
                height = 2 * im.height
            parts.append(
                f"<tr><td>{html.escape(label)}</td><td><img src='{_src(png)}' height='{height}' "
                f"alt='{html.escape(label)}'></td></tr>"
            )
        parts.append("</table>")
    parts.append(SORT + "</body></html>")
    return write_text(out, "\n".join(parts))
