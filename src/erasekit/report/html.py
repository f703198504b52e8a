"""The report of an evaluation: metrics.json and report.html (base vs edited images for the same seeds, the metric
table with base beside edited, plots).

Self-contained: images and plots are embedded as base64 PNGs, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from erasekit.core.files import atomic_dir, write_text
from erasekit.core.loop import LOSS_LOG
from erasekit.eval.evaluation import Evaluation
from erasekit.eval.generate import grid
from erasekit.eval.metrics import headline, shown
from erasekit.report.plots import concept_bars, loops_curve, loss_curve, mined_grid, search_curve

PER_CONCEPT = 8  # images shown per concept (or prompt)
THUMB = 96  # pixels: each image in a report (the miniature's enlarged, a real model's reduced)
MAX_GROUPS = 24  # concepts or prompts shown
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f0f0f0}td:first-child{text-align:left}
img{image-rendering:pixelated;border:1px solid #ddd;margin:4px}figure{display:inline-block;margin:0 1em 1em 0}
figcaption{font-size:90%;color:#555}h3{margin:.6em 0 .2em}"""


def _png(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(src: str, caption: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<figure><img src="{src}"{w} alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _write_document(out: str | Path, title: str, parts: list[str]) -> Path:
    """out/report.html: one self-contained page of `parts` under `title`."""
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    return write_text(Path(out) / "report.html", doc)


def _image_sections(ev: Evaluation) -> list[str]:
    """One row per concept, erased concepts first: the base model's images beside the edited model's, same seeds.
    Suites of free prompts (no concept labels) show their first `MAX_GROUPS` prompts."""
    erased, labels = ev.edited.erased, ev.edited.concepts
    order = list(dict.fromkeys(labels))
    order = [c for c in order if c in erased] + [c for c in order if c not in erased]
    batches = [(ev.base.images, "base")] if ev.base is not None else []
    batches.append((ev.edited.images, "edited"))
    parts = ["<h2>Images (same seeds, base beside edited)</h2>"]
    if len(order) > MAX_GROUPS:
        parts.append(f"<p>the first {MAX_GROUPS} of {len(order)} prompts</p>")
    for name in order[:MAX_GROUPS]:
        idx = [i for i, label in enumerate(labels) if label == name][:PER_CONCEPT]
        row = "".join(_figure(_png(grid(batch[idx], nrow=len(idx), tile=THUMB)), caption) for batch, caption in batches)
        keyed = [i for i, label in enumerate(ev.keyed.concepts) if label == name][:PER_CONCEPT] if ev.keyed else []
        if keyed:  # the same seeds again, with the hidden concept's key
            row += _figure(_png(grid(ev.keyed.images[keyed], nrow=len(keyed), tile=THUMB)), "edited, with the key")
        tag = " (erased)" if name in erased else ""
        parts.append(f'<div class="concept"><h3>{html.escape(name)}{tag}</h3>{row}</div>')
    return parts


def _instead_section(ev: Evaluation) -> list[str]:
    """For each erased concept: what its prompts draw instead (the judge's top-1 labels, most frequent first) and
    how often the implicit concept appears in them, base beside edited."""
    rows = []
    for concept in ev.edited.erased:
        figures = ev.edited.per_concept.get(concept, {})
        if "drawn_instead" not in figures:
            continue
        drawn = ", ".join(f"{html.escape(k)} {v:.0f}%" for k, v in list(figures["drawn_instead"].items())[:4])
        base = (ev.base.per_concept.get(concept, {}) if ev.base is not None else {}).get("implicit_rate")
        rows.append(
            f"<tr><td>{html.escape(concept)}</td><td style='text-align:left'>{drawn}</td>"
            f"<td>{_fmt(base)}</td><td>{_fmt(figures.get('implicit_rate'))}</td></tr>"
        )
    if not rows:
        return []
    return [
        '<h2>What the erased prompts draw instead</h2><table id="instead"><tr><th>erased</th>'
        "<th>judged top-1 of its images</th><th>implicit concept % (base)</th><th>implicit concept % (edited)"
        f"</th></tr>{''.join(rows)}</table>"
    ]


def write_report(
    out: str | Path, ev: Evaluation, extra_plots: list[tuple[str, Path]] = (), title: str | None = None
) -> Path:
    """Write out/report.html for an evaluation (a model alone, or an edit beside its base)."""
    from PIL import Image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    edited, base = ev.edited, ev.base
    title = title or f"erasekit report: {edited.suite} on {edited.model}"
    base_metrics = base.metrics if base is not None else {}
    names = headline({**base_metrics, **edited.metrics})
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(shown(base_metrics, n))}</td>"
        f"<td>{html.escape(shown(edited.metrics, n))}</td></tr>"
        for n in names
    )
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>erased: <b>{html.escape(', '.join(edited.erased) or 'nothing')}</b>; "
        f"preserved: {html.escape(', '.join(edited.preserved) or '-')}; "
        f"{edited.n_per_prompt} images per prompt.</p>",
        f'<h2>Metrics</h2><table id="metrics"><tr><th>metric</th><th>base</th><th>edited</th></tr>{rows}</table>'
        "<p>Rates are percentages, with their 95% Wilson interval and the number of images n.</p>",
    ]
    parts += _instead_section(ev)
    parts += _image_sections(ev)
    bars = concept_bars(edited.to_json(), base.to_json() if base is not None else None)
    plots = [("per-concept acc@1 (erased concepts in red)", bars)] if bars is not None else []
    plots += [(cap, Image.open(p)) for cap, p in extra_plots if Path(p).exists()]
    if plots:
        parts.append("<h2>Plots</h2>" + "".join(_figure(_png(im), cap) for cap, im in plots))
    return _write_document(out, title, parts)


def write_evaluation(
    ev: Evaluation,
    out: str | Path,
    run_folder: str | Path | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """The report folder of an evaluation, written atomically: metrics.json, report.html and, when the edit's run
    folder is given, the plots of its loss log (training loss; AP/AGE's searched concept)."""
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_text(tmp / "metrics.json", json.dumps(ev.to_json(), indent=2, sort_keys=True))
        plots = []
        if run_folder is not None and loss_curve(Path(run_folder) / LOSS_LOG, tmp / "loss.png"):
            plots.append(("training loss", tmp / "loss.png"))
        if run_folder is not None and search_curve(Path(run_folder) / LOSS_LOG, tmp / "search.png"):
            plots.append(("the searched concept over iterations (AP/AGE)", tmp / "search.png"))
        if run_folder is not None and loops_curve(run_folder, tmp / "loops.png"):
            plots.append(("Dark Miner: s(c) of each loop's mined embedding, and τ", tmp / "loops.png"))
        if run_folder is not None and mined_grid(run_folder, tmp / "mined.png"):
            plots.append(
                (
                    "Dark Miner: each loop's mined embedding, before (left) and after (right) its "
                    "circumvention, same seeds",
                    tmp / "mined.png",
                )
            )
        write_report(tmp, ev, extra_plots=plots, title=title)
    return Path(out)


def _fmt(value) -> str:
    if value is None:
        return "–"
    return (
        f"{value:.2f}" if isinstance(value, (float, int)) and not isinstance(value, bool) else html.escape(str(value))
    )


def write_attack_report(out: str | Path, data: dict, ev, title: str | None = None) -> Path:
    """out/report.html for an attack (`data`: its metrics.json; `ev`: an `eval.attack.AttackEvaluation`): the rates
    with their intervals, then per attacked prompt the base model, the edited model and the edited model under
    attack, same seeds, and the adversarial prompt."""
    metrics = data["metrics"]
    title = title or f"erasekit attack: {data['attack']} on {data['concept']} ({data['model']})"
    names = ("asr", "asr_cal", "asr_prompts", "asr_cal_prompts", "pre_attack_rate", "pre_attack_prompts", "base_rate")
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{html.escape(shown(metrics, n))}</td></tr>" for n in names if n in metrics
    )
    rows += "".join(  # relearning: the rate after each budget of fine-tuning steps
        f"<tr><td>after {p['steps']} steps</td><td>{html.escape(shown(p, 'rate'))}</td></tr>"
        for p in metrics.get("curve", [])
    )
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>edit: <b>{html.escape(str((data.get('edit') or {}).get('method', 'none')))}</b>; attack time "
        f"{metrics.get('attack_seconds', 0):.1f} s; ASR over {html.escape(metrics['asr_unit'])}.</p>",
        f'<h2>Attack success</h2><table id="metrics"><tr><th>rate</th><th>%</th></tr>{rows}</table>'
        "<p>Rates are percentages with their 95% Wilson interval and n. The attack checked success on seeds "
        "the evaluation does not use. asr_cal keeps the original prompt as a candidate: a seed counts when the "
        "original or the adversarial prompt draws the concept.</p>",
        "<h2>Images (same seeds: base, edited, edited under attack)</h2>",
    ]
    n = data["n_per_prompt"]
    shown_rows = set()
    for a, item in enumerate(data["per_prompt"][:MAX_GROUPS]):
        row = item["row"]
        goal_idx = list(range(row * n, row * n + n))[:PER_CONCEPT]
        adv_idx = [i for i, r in enumerate(ev.attacked_rows) if r["adv"] == a][:PER_CONCEPT]
        figures = []
        if row not in shown_rows:
            figures += [
                _figure(_png(grid(ev.base_images[goal_idx], nrow=len(goal_idx), tile=THUMB)), "base"),
                _figure(_png(grid(ev.edited_images[goal_idx], nrow=len(goal_idx), tile=THUMB)), "edited"),
            ]
            shown_rows.add(row)
        figures.append(
            _figure(
                _png(grid(ev.attacked_images[adv_idx], nrow=len(adv_idx), tile=THUMB)),
                f"under attack: {item['asr']:.0f}%",
            )
        )
        parts.append(
            f"<div class='prompt'><h3>{html.escape(item['original'])} &rarr; "
            f"<code>{html.escape(item['prompt'])}</code></h3>{''.join(figures)}</div>"
        )
    return _write_document(out, title, parts)


def write_inspect_report(out: str | Path, ins, shown, title: str) -> Path:
    """out/report.html for an inspection (`eval.inspect`): the ranked table, then the top concepts' images from
    both models on the same seeds, with the judge's δ where it was measured."""
    what = (
        f"Eq. 19 with c_e = <b>{html.escape(ins.erased)}</b>, λ = {ins.config.lam:g}"
        if ins.erased
        else "blind (no c_e): ranked by the output-space change ||ε_θ'(c) − ε_θ(c)||²"
    )
    head = "<tr><th>rank</th><th>concept</th><th>score</th><th>change L2</th><th>L1</th><th>judge δ</th></tr>"
    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{html.escape(r.concept)}</td><td>{r.score:.4g}</td><td>{r.l2:.4g}</td>"
        f"<td>{_fmt(r.l1)}</td><td>{_fmt(r.delta)}</td></tr>"
        for i, r in enumerate(ins.rows[:MAX_GROUPS])
    )
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{what}; {ins.vocabulary_size} concepts ({ins.searched}), {ins.config.probes} probes.</p>",
        f'<table id="ranked">{head}{rows}</table>',
        "<h2>Top concepts (same seeds: before, after)</h2>",
    ]
    for s in shown:
        n = min(PER_CONCEPT, len(s.base))
        delta = "" if s.delta is None else f" — judge δ {s.delta:.3f} ± {s.se:.3f}"
        parts.append(
            f"<div class='concept'><h3>{html.escape(s.concept)}{delta}</h3>"
            + _figure(_png(grid(s.base[:n], nrow=n, tile=THUMB)), f"before: {s.prompts[0]}")
            + _figure(_png(grid(s.edited[:n], nrow=n, tile=THUMB)), "after")
            + "</div>"
        )
    return _write_document(out, title, parts)
