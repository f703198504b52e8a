"""The docs pages that come from the code and from committed results, written or checked.

    .venv/bin/python docs/gen.py           # write them (`make docs`)
    .venv/bin/python docs/gen.py --check   # exit 1 naming every stale file (the tests run this)

What it owns:
- docs/methods/NAME.md and docs/attacks/NAME.md, one per registered method and attack (summary, paper, families,
  the module's docstring with its equations, the options with the paper's defaults and the miniature preset, a
  runnable snippet, and the latest measured miniature row with its n and intervals), and their index pages;
- every block between `<!-- generated: NAME -->` and `<!-- /generated -->` in README.md and docs/*.md:
  `support-matrix` (families x methods x attacks, from the registries) and `results:FILE` (the table of
  docs/results/FILE.json, rendered by the `table` function of the benchmark script that wrote it, with the file's
  command, commit, machine, date and wall time);
- docs/index.md, the site's home: the README with its links made relative to docs/;
- mkdocs.yml's nav entries between `# generated: NAV` and `# /generated`.

No figure is typed into a page: a measured table is a `results:` block, and a results file without a command and
a commit is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"
IMAGES = DOCS / "images"
MEASURED = "methods-mini"  # the results file whose rows the method and attack pages show
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w:.-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)", re.S)
NAV = re.compile(r"(?P<indent>[ ]*)# generated: (?P<name>\w+)\n(?P<body>.*?)(?P=indent)# /generated", re.S)
PROVENANCE = ("command", "commit", "machine", "date", "wall_seconds", "results")


# ---- results files ----


def load_results(name: str) -> dict:
    """docs/results/NAME.json, refused unless it says where it came from."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(
            f"docs: {path.relative_to(ROOT)} is rendered but does not exist: run the benchmark that writes it"
        )
    data = json.loads(path.read_text())
    absent = [k for k in PROVENANCE if not data.get(k)]
    if absent:
        raise SystemExit(f"docs: {path.relative_to(ROOT)} lacks {', '.join(absent)}")
    return data


def _script(command: str) -> Path:
    """The benchmark script a results file's command ran (`.venv/bin/python benchmarks/X.py ...`)."""
    script = next((t for t in command.split() if t.endswith(".py")), None)
    if script is None or not (ROOT / script).is_file():
        raise SystemExit(f"docs: cannot find the script of the results command {command!r}")
    return ROOT / script


def _module(path: Path):
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


def machine_text(m: dict) -> str:
    gpu = m.get("gpu") or "no GPU"
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']:g} GiB, {gpu}"


def provenance(name: str, data: dict, prefix: str = "") -> str:
    """Where a rendered table came from; `prefix` leads from the page to docs/ ("../" from a method page)."""
    cells = data["results"].get("cell_seconds")
    took = f"{data['wall_seconds'] / 60:.1f} min" + (
        f" to collect; its methods and attacks took {cells / 60:.0f} min when its cells were computed" if cells else ""
    )
    return (
        f"*From [`docs/results/{name}.json`]({prefix}results/{name}.json): `{data['command']}` at commit `{data['commit']}` on "
        f"{machine_text(data['machine'])}, {data['date']}, {took}.*"
    )


def results_block(name: str, link_prefix: str = "") -> str:
    data = load_results(name)
    table = _module(_script(data["command"])).table(data["results"])
    return table + "\n\n" + provenance(name, data, link_prefix) + "\n"


# ---- registered methods and attacks ----


def _registries():
    from erasekit.attacks import registry as attacks
    from erasekit.methods import registry as methods

    return methods.available(), attacks.available()


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _value(v) -> str:
    if v is None or v == "":
        return "–" if v is None else '`""`'
    return f"`{v!r}`" if not isinstance(v, str) else f"`{v}`"


def options_table(spec) -> str:
    from erasekit.bench.table import markdown_table
    from erasekit.methods.loop import PLAIN

    mini = spec.presets.get("mini", {})
    taken = getattr(spec.config, "OPTIONS", ())  # a memory option the method refuses is not one of its options
    body = [
        [f"`{f.name}`", _value(_default(f)), _value(mini[f.name]) if f.name in mini else "same"]
        for f in dataclasses.fields(spec.config)
        if not f.name.startswith("_") and (f.name not in PLAIN or f.name in taken)
    ]
    return markdown_table(["option", "paper default", "miniature preset"], body)


def _docstring(spec) -> str:
    """The module's docstring: its paper, algorithm (with the equations) and defaults."""
    return inspect.cleandoc(sys.modules[spec.fn.__module__].__doc__ or spec.summary)


def _families(spec) -> str:
    from erasekit.core.registry import FAMILIES

    text = ", ".join(f for f in FAMILIES if f in spec.families)
    left = [f for f in FAMILIES if f not in spec.families]
    if left:
        text += f" (not {', '.join(left)}: {spec.why})"
    return text


def _header(spec, more: dict | None = None) -> list[str]:
    """A page's title, summary and facts: paper, families, (an attack's result) and module."""
    facts = {"Paper": spec.paper or "none (a baseline)", "Families": _families(spec), **(more or {})}
    facts["Module"] = f"`{spec.fn.__module__}`"
    return [f"# `{spec.name}`", "", spec.summary, "", *(f"- **{k}**: {v}" for k, v in facts.items())]


def method_page(spec, data: dict | None, bench_module) -> str:
    label = {"uce": "uce+P"}.get(spec.name, spec.name)
    erase_extra = " --preserve circle,square" if spec.name == "uce" else ""
    concepts = 'ConceptSet(["star"], ["circle", "square"])' if spec.name == "uce" else 'ConceptSet(["star"])'
    body = _docstring(spec)
    lines = [
        *_header(spec),
        "",
        "## Run it",
        "",
        "```bash",
        f"erasekit erase --model mini --method {spec.name} --erase star{erase_extra} --out runs/{spec.name}-star",
        f"erasekit evaluate --edit runs/{spec.name}-star --suite world-objects --out runs/{spec.name}-star-eval",
        f"erasekit erase --model path/to/sd-folder --method {spec.name} --erase 'Van Gogh' "
        f"--out runs/{spec.name}-vangogh",
        "```",
        "",
        "```python",
        "from erasekit.core.loop import Run",
        "from erasekit.methods import registry",
        "from erasekit.methods.concepts import ConceptSet",
        "from erasekit.models import load_bundle",
        "",
        'bundle = load_bundle("mini")  # or a diffusers folder, a .safetensors file, a hub id',
        f'spec = registry.get("{spec.name}")',
        "config = registry.build_config(spec, preset=bundle.preset)  # the paper's defaults, then the preset",
        f"edit = spec.erase(bundle, {concepts}, config, Run(progress=False))",
        f'edit.save("runs/{spec.name}-star-py")',
        'images = edit.apply(bundle).generate("a star", seeds=[0, 1, 2, 3])  # [4, 3, H, W] in [0, 1]',
        "```",
        "",
    ]
    lines += ["## Measured on the miniature", ""]
    if (IMAGES / f"grid-{spec.name}.png").is_file():
        lines += [
            f"![base and {spec.name} on the miniature](../images/grid-{spec.name}.png)",
            "",
            f'*"a star" by the base miniature, then after `{spec.name}` erased `star`; "a circle" by both below it '
            "(a kept object); six seeds. Drawn by `benchmarks/docs_results.py`.*",
            "",
        ]
    rows = [r for r in (data or {}).get("results", {}).get("records", []) if r["method"] in ("none", label)]
    if data and len(rows) == 2:
        res = data["results"]
        lines += [
            f"Erasing `star`; rates in % [95% Wilson interval] over n images ({res['erasure_n']} per prompt; the "
            f"`none` row is the unedited model); ASR over {res['attack_n']} images per adversarial prompt. "
            f"All methods side by side: [measured results](../results.md).",
            "",
            bench_module.table({**res, "records": rows}),
            "",
            provenance(MEASURED, data, "../"),
            "",
        ]
    else:
        lines += [
            f"Not in the committed results ([`{MEASURED}.json`](../results.md)): run "
            "`.venv/bin/python benchmarks/docs_results.py`.",
            "",
        ]
    lines += ["## How it works", "", body, "", "## Options", "", options_table(spec), ""]
    lines += [
        "Set any of them with `--set key=value` (or `--config file.yaml`); `--set` values are checked against the "
        "types above.",
        "",
    ]
    return "\n".join(lines)


RESULTS_OF = {
    "text": "adversarial prompts (text)",
    "embedding": "a learned embedding",
    "weights": "the attacked model's weights, fine-tuned (relearned/), and a curve",
}


def attack_page(spec, data: dict | None) -> str:
    body = _docstring(spec)
    lines = [
        *_header(spec, {"Result": RESULTS_OF[spec.ends_in]}),
        "",
        "## Run it",
        "",
        "```bash",
        "erasekit erase --model mini --method esd --erase star --out runs/esd-star",
        f"erasekit attack --edit runs/esd-star --attack {spec.name} --concept star --out atk/esd-star-{spec.name}",
        "```",
        "",
        "`atk/.../metrics.json` holds the ASR with its interval and n, the calibrated ASR (the original prompt kept "
        "as a candidate) and the rate before the attack; "
        + (
            "`relearned/` is the fine-tuned model, an edit to apply after the erasure's, and `curve` the rate after "
            "each budget of steps."
            if spec.ends_in == "weights"
            else "`prompts.csv` replays the attack with `erasekit generate`."
        ),
        "",
        "## Measured on the miniature",
        "",
    ]
    res = (data or {}).get("results", {})
    if data and spec.name in res.get("attacks", []):
        recs = res["records"]
        key = f"asr_{spec.name}"
        lines += [
            f"ASR % [95% Wilson interval] n of `{spec.name}` bringing `star` back after each method erased it "
            "(`none`: the unedited model, where a calibrated attack should succeed).",
            "",
        ]
        from erasekit.bench.table import markdown_table, shown

        rows = [[r["method"], shown(r, key, 0), shown(r, "pre_attack", 0)] for r in recs]
        lines += [
            markdown_table(["model", "ASR", "before the attack"], rows),
            "",
            provenance(MEASURED, data, "../"),
            "",
        ]
    else:
        lines += [
            f"Not in the committed results ([`{MEASURED}.json`](../results.md)); the bench measures it with "
            f"`attacks: {{names: [{spec.name}]}}` in a spec ([bench](../bench.md)).",
            "",
        ]
    lines += ["## How it works", "", body, "", "## Options", "", options_table(spec), ""]
    return "\n".join(lines)


def index_page(kind: str, specs) -> str:
    title = {"method": "Methods", "attack": "Attacks"}[kind]
    lines = [f"# {title}", ""]
    if kind == "method":
        lines += [
            "Every method is one module that reads like its paper's algorithm box; `erasekit methods` lists them "
            "with the families they run on.",
            "",
        ]
    else:
        lines += [
            "An attack tries to bring an erased concept back; its success rate (ASR) is the share of images that "
            "show the concept, with its 95% interval and n. `erasekit attacks` lists them.",
            "",
        ]
    lines += [f"| {kind} | summary | paper |", "|---|---|---|"]
    lines += [f"| [{s.name}]({s.name}.md) | {s.summary} | {s.paper or '–'} |" for s in specs]
    return "\n".join(lines) + "\n"


# ---- the files ----


def pages() -> dict[Path, str]:
    """Every generated page: path -> text."""
    methods, attacks = _registries()
    data = load_results(MEASURED) if (RESULTS / f"{MEASURED}.json").is_file() else None
    bench_module = _module(_script(data["command"])) if data else None
    out = {DOCS / "methods" / "index.md": index_page("method", methods)}
    out |= {DOCS / "methods" / f"{s.name}.md": method_page(s, data, bench_module) for s in methods}
    out[DOCS / "attacks" / "index.md"] = index_page("attack", attacks)
    out |= {DOCS / "attacks" / f"{s.name}.md": attack_page(s, data) for s in attacks}
    return out


def block(name: str, page: Path) -> str:
    if name == "support-matrix":
        from erasekit.report.support import support_tables

        return support_tables() + "\n"
    if name.startswith("results:"):
        prefix = "docs/" if page.parent == ROOT else ""
        return results_block(name.split(":", 1)[1], prefix)
    raise SystemExit(f"docs: {page.relative_to(ROOT)} has an unknown generated block {name!r}")


def filled(page: Path, text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + block(m.group("name"), page) + m.group(4), text)


def nav_entries(name: str) -> str:
    methods, attacks = _registries()
    specs = {"methods": methods, "attacks": attacks}[name]
    return f"- {name}/index.md\n" + "".join(f"- {s.name}: {name}/{s.name}.md\n" for s in specs)


def with_nav(text: str) -> str:
    def sub(m):
        body = "".join(m.group("indent") + line + "\n" for line in nav_entries(m.group("name")).splitlines())
        return f"{m.group('indent')}# generated: {m.group('name')}\n{body}{m.group('indent')}# /generated"

    return NAV.sub(sub, text)


def home(readme: str) -> str:
    """The site's home page: the README, its links made relative to docs/ (one text, two places)."""
    text = readme.replace("](docs/", "](")
    note = "<!-- generated from README.md by docs/gen.py: edit the README -->\n"
    return note + text


def expected() -> dict[Path, str]:
    out = pages()
    hand = [ROOT / "README.md", *sorted(p for p in DOCS.glob("*.md") if p.name != "index.md")]
    for page in hand:
        text = page.read_text()
        if "<!-- generated:" in text:
            out[page] = filled(page, text)
    readme = out.get(ROOT / "README.md", (ROOT / "README.md").read_text())
    out[DOCS / "index.md"] = home(readme)
    mkdocs = ROOT / "mkdocs.yml"
    out[mkdocs] = with_nav(mkdocs.read_text())
    return out


def stale_pages() -> list[Path]:
    """Generated pages that are missing or differ, and pages of entries no longer registered."""
    want = expected()
    stale = [p for p, text in want.items() if not p.is_file() or p.read_text() != text]
    for folder in ("methods", "attacks"):
        stale += [p for p in (DOCS / folder).glob("*.md") if p not in want]
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a generated file is stale")
    args = parser.parse_args()
    if args.check:
        stale = stale_pages()
        if stale:
            names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
            raise SystemExit(f"docs: stale generated files ({names}): run `.venv/bin/python docs/gen.py`")
        return
    want = expected()
    for folder in ("methods", "attacks"):
        for p in (DOCS / folder).glob("*.md"):
            if p not in want:
                p.unlink()
    for path, text in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
