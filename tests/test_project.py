"""The project's own promises: environment.yml agrees with pyproject, CI runs the README's command."""
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
    """Every path the README's layout table names: ``stipkit/x.py`` and, in the same cell, the
    sibling files written as bare names (``tables.py``), or files inside a named folder."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout"):].split("\n\n")[2]
    paths = set()
    for row in table.splitlines()[2:]:
        cell = row.split("|")[1]
        names = re.findall(r"`([^`]+)`", cell)
        base = next((n for n in names if n.startswith(("stipkit/", "benchmarks/", "tests/"))), "")
        folder = base if base.endswith("/") else base.rsplit("/", 1)[0] + "/"
        for n in names:
            paths.add(n if "/" in n else folder + n)
        if base.endswith("/"):  # files named in the "what" column of a folder row
            paths.update(base + n for n in re.findall(r"`([a-z_0-9]+\.py)`", row.split("|")[2]))
    return paths


def test_readme_layout_table_matches_the_tree():
    named = _layout_paths()
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"the README layout names paths that do not exist: {missing}"
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "stipkit").rglob("*.py")
               if p.name != "__init__.py"}
    unlisted = sorted(modules - named)
    assert not unlisted, f"modules missing from the README layout table: {unlisted}"


def test_no_module_is_over_450_lines_and_config_imports_no_model_code():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "stipkit").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"modules over 450 lines: {long}"
    config = (ROOT / "stipkit" / "config.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+(\.models|stipkit\.models|torch)", config, re.M)
