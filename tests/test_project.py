"""The project's own promises: environment.yml agrees with pyproject, CI runs the README's command."""
import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pip_section(text: str) -> list[str]:
    lines, inside = [], False
    for line in text.splitlines():
        if re.match(r"^\s*- pip:\s*$", line):
            inside = True
            continue
        if inside:
            m = re.match(r"^\s+- (.+?)\s*$", line)
            if not m:
                break
            lines.append(m.group(1))
    return lines


def test_environment_yml_agrees_with_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = pip_section((ROOT / "environment.yml").read_text())
    assert pip[-1] == "-e .", "environment.yml must install the package itself last"
    assert pip[:-1] == deps
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)
    commands = [c.strip() for b in blocks for c in b.strip().splitlines() if c.strip()]
    assert "make test" in commands
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _layout_paths() -> set[str]:
    """Every path the layout table (docs/layout.md) names. In each row, read left to right, a name that
    starts with ``stipkit/``, ``benchmarks/`` or ``tests/`` is a path (a folder when it ends in
    ``/``); any other name lies in the latest folder named before it (``memories/`` then
    ``base.py`` is ``stipkit/models/memories/base.py``)."""
    text = (ROOT / "docs" / "layout.md").read_text()
    table = text[text.index("# Layout"):].split("\n\n")[2]
    paths = set()
    for row in table.splitlines()[2:]:
        folder = ""
        for name in re.findall(r"`([^`]+)`", row):
            if not re.fullmatch(r"[\w./-]+", name):
                continue
            path = name if name.startswith(("stipkit/", "benchmarks/", "tests/")) else folder + name
            if path.endswith("/"):
                folder = path
            paths.add(path)
    return paths


def test_readme_layout_table_matches_the_tree():
    named = _layout_paths()
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"docs/layout.md names paths that do not exist: {missing}"
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "stipkit").rglob("*.py")
               if p.name != "__init__.py"}
    unlisted = sorted(modules - named)
    assert not unlisted, f"modules missing from the layout table of docs/layout.md: {unlisted}"


def test_no_module_is_over_450_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "stipkit").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"modules over 450 lines: {long}"


def test_the_layers_contract_is_stated_and_checked_by_make_test():
    """The floors of the README's layout, top first, as import-linter's layers contract; `make
    test` runs lint-imports (a forbidden import fails it: tests/test_layers.py shows one)."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    assert layers[0] == "stipkit.plots" and layers[-1] == "stipkit.runtime"
    assert "lint-imports" in (ROOT / "Makefile").read_text()


def test_readme_front_page_is_short_and_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 150
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
    for doc in (ROOT / "docs").glob("*.md"):
        for link in re.findall(r"\]\(([^)#:]+)\)", doc.read_text()):
            assert (doc.parent / link).exists(), f"{doc.name} links to {link}, which does not exist"


def test_no_development_log_words_in_readme_docs_or_notebooks():
    """A reader never saw the kit's issues: "issue 8" or "the old preset" mean nothing to them."""
    texts = {p: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        texts[nb] = "\n".join("".join(c["source"]) for c in cells)
    for path, text in texts.items():
        hits = re.findall(r"\b[Ii]ssues? #?\d+|\bthe old preset\b", text)
        assert not hits, f"{path.relative_to(ROOT)}: {hits}"
