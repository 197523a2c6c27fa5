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
