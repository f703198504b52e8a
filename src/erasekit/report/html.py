"""report.html: base vs edited grids for the same seeds, the metric table (base beside edited), plots.

Self-contained: images and plots are embedded as base64 PNGs, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from erasekit.core.files import write_text
from erasekit.eval.generate import grid

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}
img{image-rendering:pixelated;border:1px solid #ddd;margin:4px}figure{display:inline-block;margin:0 1em 1em 0}
figcaption{font-size:90%;color:#555}"""


def _png(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(src: str, caption: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<figure><img src="{src}"{w} alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _bars(edited: dict, base: dict | None):
    """Per-concept acc@1 bars (base beside edited) as a PIL image, or None."""
    per = edited.get("per_concept") or {}
    names = [n for n in per if "acc@1" in per[n]]
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.5 + 0.55 * len(names), 3))
    if base:
        ax.bar(x - 0.2, [base["per_concept"].get(n, {}).get("acc@1", 0) for n in names], 0.4, label="base")
    ax.bar(x + (0.2 if base else 0), [per[n]["acc@1"] for n in names], 0.4, label="edited")
    for n_i, name in enumerate(names):
        if name in edited.get("erased", []):
            ax.axvspan(n_i - 0.5, n_i + 0.5, color="red", alpha=0.08)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("acc@1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue()))


def write_report(out: str | Path, edited: dict, images: dict, base: dict | None = None,
                 extra_plots: list[tuple[str, Path]] = (), title: str | None = None) -> Path:
    """Write out/report.html. `images` is {"edited": [B,3,H,W], "base": [B,3,H,W] or None, "prompts": [...]}."""
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    title = title or f"erasekit report: {edited['suite']} on {edited['model']}"
    names = sorted(set(edited["metrics"]) | set((base or {}).get("metrics", {})))
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_fmt((base or {}).get('metrics', {}).get(n))}</td>"
        f"<td>{_fmt(edited['metrics'].get(n))}</td></tr>" for n in names)
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p>erased: <b>{html.escape(', '.join(edited.get('erased', [])) or 'nothing')}</b>; "
             f"preserved: {html.escape(', '.join(edited.get('preserved', [])) or '-')}; "
             f"{edited['n_per_prompt']} images per prompt.</p>",
             f'<h2>Metrics</h2><table id="metrics"><tr><th>metric</th><th>base</th><th>edited</th></tr>{rows}</table>']
    shown = min(len(images["edited"]), 64)
    scale = max(1, 96 // images["edited"].shape[-1])
    parts.append("<h2>Images (same seeds)</h2>")
    if images.get("base") is not None:
        parts.append(_figure(_png(grid(images["base"][:shown], nrow=8, upscale=scale)), "base"))
    parts.append(_figure(_png(grid(images["edited"][:shown], nrow=8, upscale=scale)), "edited"))
    bars = _bars(edited, base)
    plots = ([("per-concept acc@1", bars)] if bars is not None else [])
    plots += [(cap, Image.open(p)) for cap, p in extra_plots if Path(p).exists()]
    if plots:
        parts.append("<h2>Plots</h2>" + "".join(_figure(_png(im), cap) for cap, im in plots))
    doc = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    return write_text(out / "report.html", doc)


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if isinstance(value, (float, int)) and not isinstance(value, bool) else html.escape(str(value))
