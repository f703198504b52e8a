"""The docs: generated pages current and complete, every rendered figure traceable to a committed results file, no
path outside the repository, small images, a README that fits a screen, and a site that renders in a browser."""

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GEN = [sys.executable, str(DOCS / "gen.py")]


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / p for p in out.stdout.split()]


def _rendered_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_generated_pages_are_current():
    proc = subprocess.run([*GEN, "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_registered_method_and_attack_has_its_page():
    from erasekit.attacks import registry as attacks
    from erasekit.methods import registry as methods

    for folder, registry in (("methods", methods), ("attacks", attacks)):
        names = {s.name for s in registry.available()}
        pages = {p.stem for p in (DOCS / folder).glob("*.md")} - {"index"}
        assert pages == names, folder
        index = (DOCS / folder / "index.md").read_text()
        assert all(f"]({name}.md)" in index for name in names)
        for name in names:
            page = (DOCS / folder / f"{name}.md").read_text()
            assert page.startswith(f"# `{name}`") and "## Options" in page and "## How it works" in page


def test_generator_fails_when_a_page_is_stale(tmp_path):
    page = DOCS / "methods" / "esd.md"
    original = page.read_text()
    try:
        page.write_text(original.replace("## Options", "## Settings"))
        proc = subprocess.run([*GEN, "--check"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 1 and "docs/methods/esd.md" in proc.stderr
    finally:
        page.write_text(original)


def test_every_rendered_results_file_exists_and_names_its_commit_and_command():
    blocks = {m for p in _rendered_pages() for m in re.findall(r"<!-- generated: results:([\w.-]+) -->", p.read_text())}
    blocks |= {m for p in _rendered_pages() for m in re.findall(r"\(\.\./results/([\w.-]+)\.json\)", p.read_text())}
    assert "methods-mini" in blocks
    for name in blocks:
        path = DOCS / "results" / f"{name}.json"
        assert path.is_file(), f"{name}.json is rendered but not committed"
        assert path in _tracked("docs/results"), f"{path} is not committed"
        data = json.loads(path.read_text())
        assert data["command"].startswith(".venv/bin/python benchmarks/") and re.fullmatch(
            r"[0-9a-f]{7,}(\+dirty)?", data["commit"]
        )
        assert data["machine"]["cores"] >= 1 and data["date"] and data["wall_seconds"] > 0


def test_a_results_file_without_provenance_is_refused(tmp_path):
    sys.path.insert(0, str(DOCS))
    try:
        import gen
    finally:
        sys.path.remove(str(DOCS))
    bad = DOCS / "results" / "_unnamed_test.json"
    bad.write_text(json.dumps({"results": {"x": 1}, "command": ".venv/bin/python benchmarks/families.py"}))
    try:
        with pytest.raises(SystemExit, match="lacks commit, machine, date, wall_seconds"):
            gen.load_results("_unnamed_test")
    finally:
        bad.unlink()


def test_no_path_outside_the_repository():
    text_files = _tracked("*.py", "*.md", "*.yml", "*.yaml", "*.toml", "*.cfg", "*.txt", "Makefile")
    offending = [
        str(p.relative_to(ROOT))
        for p in text_files
        if p.is_file() and re.search(r"\.\./shared|/work/(main|shared)", p.read_text(errors="replace"))
    ]
    assert offending == []


def test_images_are_small_pngs():
    images = _tracked("docs/images")
    assert {p.name for p in images} >= {"grid-methods.png", "scatter.png", "asr.png", "graph.png"}
    for p in images:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 100_000, p.name


def test_readme_fits_a_screen_and_starts_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    commands = re.findall(r"```bash\n(.*?)\n```", readme, re.S)[:2]
    setup, tests = commands
    assert setup.startswith("python3 -m venv .venv") and setup.endswith(".venv/bin/erasekit demo")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv .venv" in ci and ".venv/bin/pip install -q torch==2.13.0" in ci
    assert '.venv/bin/pip install -q -e ".[dev]"' in ci
    assert ci.rstrip().splitlines()[-1] == tests
    for check in ("ruff check", "ruff format --check", "mypy", "docs/gen.py --check", "mkdocs build --strict"):
        assert check in ci


def test_the_uce_page_snippet_runs(tmp_path):
    page = (DOCS / "methods" / "uce.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", page, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "uce-star-py" / "manifest.json").is_file()


# ---- the built site, in a browser ----


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.tables = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "table":
            self.tables += 1


def _local(page: Path, ref: str) -> Path | None:
    url = urlparse(ref)
    if url.scheme or url.netloc or not url.path:  # external, or an anchor on the same page
        return None
    target = (page.parent / unquote(url.path)).resolve()
    return target / "index.html" if target.is_dir() or url.path.endswith("/") else target


_CHECK = (
    "<script>window.addEventListener('load', () => setTimeout(() => {"
    "const imgs = [...document.querySelectorAll('article img')];"
    "document.body.setAttribute('data-images', imgs.length);"
    "document.body.setAttribute('data-broken', imgs.filter(i => !i.complete || i.naturalWidth === 0).length);"
    "document.body.setAttribute('data-tables', document.querySelectorAll('article table').length);"
    "}, 500));</script></body>"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("page", ["index.html", "methods/esd/index.html"])
def test_site_pages_render_with_working_links_images_and_tables(site, page, tmp_path):
    from test_eval_pipeline import chromium

    path = site / page
    refs = _Refs()
    refs.feed(path.read_text())
    broken = [r for r in refs.links + refs.images if (t := _local(path, r)) is not None and not t.exists()]
    assert broken == []
    assert refs.tables >= 1 and refs.images

    check = path.with_name("_check.html")
    check.write_text(path.read_text().replace("</body>", _CHECK, 1))
    dom = chromium(
        check.as_uri(),
        tmp_path / "profile",
        "--allow-file-access-from-files",
        "--virtual-time-budget=5000",
        "--dump-dom",
    )
    found = {k: int(v) for k, v in re.findall(r'data-(images|broken|tables)="(\d+)"', dom)}
    assert found.get("images", 0) >= 1 and found.get("broken") == 0 and found.get("tables", 0) >= 1, found
    check.unlink()
