"""``clean_battle`` export and all-or-nothing import, through the API and the CLI."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from arena import store
from arena.cli import main
from ratings import read_battles

from .helpers import count, make_battle, vote_on_new_battle

UTC = dt.UTC
LMSYS_FIELDS = {"question_id", "model_a", "model_b", "winner", "judge", "turn", "anony",
                "language", "tstamp"}  # fmt: skip


def _lines(path: Path) -> list[dict[str, object]]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return [json.loads(line) for line in raw.decode().splitlines()]


def _votes(engine: Engine) -> list[str]:
    t0 = dt.datetime(2030, 1, 1, tzinfo=UTC)
    return [
        vote_on_new_battle(engine, "model_a", voted_at=t0 + dt.timedelta(seconds=3)),
        vote_on_new_battle(
            engine,
            "tie",
            model_a="beta",
            model_b="gamma",
            mode="named",
            voted_at=t0 + dt.timedelta(seconds=1, microseconds=7),
        ),
        vote_on_new_battle(
            engine,
            "model_b",
            exclusion="rate_limited",
            prompt=None,
            voted_at=t0 + dt.timedelta(days=2),
        ),
    ]


def test_export_records_in_clean_battle_shape(populated: Engine, tmp_path: Path) -> None:
    late, named, excluded = _votes(populated)
    make_battle(populated)  # not voted: not exported
    out = tmp_path / "battles.jsonl"
    assert store.export_battles(engine=populated, out=out, with_conversations=True) == 3
    recs = _lines(out)
    assert [r["battle_id"] for r in recs] == [named, late, excluded]  # by time
    assert all(LMSYS_FIELDS | {"battle_id", "exclusion"} <= set(r) for r in recs)
    first = recs[0]
    assert (first["model_a"], first["model_b"], first["winner"], first["anony"]) == (
        "beta",
        "gamma",
        "tie",
        False,
    )
    assert first["tstamp"] == dt.datetime(2030, 1, 1, 0, 0, 1, 7, tzinfo=UTC).timestamp()
    assert first["conversation_a"] == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert first["conversation_b"][1] == {"role": "assistant", "content": "Four."}
    assert recs[2]["exclusion"] == "rate_limited" and recs[2]["conversation_a"] == []
    assert recs[2]["question_id"] == excluded  # no prompt: its own question
    # Public tooling reads it: the ratings reader takes the file as it is, and leaves out
    # what the database leaves out unless asked.
    assert len(read_battles(out, include_named=True, include_excluded=True)) == 3
    kept = read_battles(out, include_named=True)
    assert len(kept) == 2 and kept.notes == ("left out 1 excluded votes (rate_limited 1)",)


def test_export_is_reproducible_and_since_filters(populated: Engine, tmp_path: Path) -> None:
    _votes(populated)
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    store.export_battles(engine=populated, out=a, with_conversations=True)
    store.export_battles(engine=populated, out=b, with_conversations=True)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    since = dt.datetime(2030, 1, 1, 0, 0, 2, tzinfo=UTC)
    n = store.export_battles(engine=populated, out=tmp_path / "s.jsonl", since=since)
    assert n == 2 and all(r["tstamp"] >= since.timestamp() for r in _lines(tmp_path / "s.jsonl"))
    assert "conversation_a" not in _lines(tmp_path / "s.jsonl")[0]


def test_round_trip_into_an_empty_database(
    populated: Engine, make_db: Callable[[], str], tmp_path: Path
) -> None:
    _votes(populated)
    first, second = tmp_path / "1.jsonl.gz", tmp_path / "2.jsonl.gz"
    store.export_battles(engine=populated, out=first, with_conversations=True)
    target = store.open_engine(make_db(), create_if_empty=True)
    try:
        report = store.import_battles(engine=target, path=first)
        assert (report.records, report.inserted, report.duplicates) == (3, 3, 0)
        assert report.models_created == ("alpha", "beta", "gamma")
        store.export_battles(engine=target, out=second, with_conversations=True)
        assert first.read_bytes() == second.read_bytes()
        # Imported battles are whole: status voted, messages kept, ratings read them.
        assert count(target, "message") == 6
        assert len(store.battles_for_ratings(engine=target)) == 1
        assert len(store.battles_for_ratings(engine=target, include_named=True)) == 2
        assert len(store.battles_for_ratings(engine=target, include_excluded=True)) == 2
        again = store.import_battles(engine=target, path=first)
        assert (again.inserted, again.duplicates, again.models_created) == (0, 3, ())
    finally:
        target.dispose()


def test_duplicates_within_and_across_files_are_skipped_and_counted(
    engine: Engine, tmp_path: Path
) -> None:
    rec = {"model_a": "x", "model_b": "y", "winner": "model_a", "tstamp": 1.7e9, "turn": 1}
    path = tmp_path / "dump.jsonl"
    lines = [rec, {**rec, "winner": "tie"}, rec, {**rec, "battle_id": "b-1"},
             {**rec, "battle_id": "b-1", "winner": "model_b"}]  # fmt: skip
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    report = store.import_battles(engine=engine, path=path)
    # Records without a battle id (public dumps) get an id derived from their content.
    assert (report.records, report.inserted, report.duplicates) == (5, 3, 2)
    report = store.import_battles(engine=engine, path=path)
    assert (report.records, report.inserted, report.duplicates) == (5, 0, 5)
    assert count(engine, "vote") == 3
    # A vote without a judge or question id is its own cluster, never a shared one.
    battles = store.battles_for_ratings(engine=engine)
    assert battles.clusters is not None and len(set(battles.clusters["judge"])) == 3


GOOD = {"battle_id": "b", "model_a": "x", "model_b": "y", "winner": "tie", "tstamp": 1.7e9}


@pytest.mark.parametrize(
    ("line", "field", "match"),
    [
        ("{not json", None, "malformed JSON"),
        ("[1, 2]", None, "expected a JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "model_a"}), "model_a", "missing"),
        (json.dumps({**GOOD, "winner": "draw"}), "winner", "unknown winner 'draw'"),
        (json.dumps({**GOOD, "model_b": "x"}), "model_b", "plays itself"),
        (json.dumps({**GOOD, "tstamp": "yesterday"}), "tstamp", "unix seconds"),
        (json.dumps({**GOOD, "tstamp": -5}), "tstamp", "out of range"),
        (json.dumps({**GOOD, "turn": -1}), "turn", "integer >= 0"),
        (json.dumps({**GOOD, "anony": "yes"}), "anony", "true or false"),
        (json.dumps({**GOOD, "judge": "j" * 200}), "judge", "longer than"),
        (json.dumps({**GOOD, "model_a": "a\u0000b"}), "model_a", "NUL"),
        # Names are shown to every visitor: no HTML or Markdown gets in (issue 11).
        (json.dumps({**GOOD, "model_a": '<img src="http://x/y">'}), "model_a", "model name"),
        (json.dumps({**GOOD, "model_b": "[Log in](http://x)"}), "model_b", "not allowed"),
        (json.dumps({**GOOD, "model_b": "![p](http://x/p.png)"}), "model_b", "model name"),
        (
            json.dumps({**GOOD, "conversation_a": [{"role": "bot", "content": "x"}]}),
            "conversation_a",
            "role",
        ),
        (
            json.dumps({**GOOD, "conversation_a": [{"role": "assistant", "content": "x"}]}),
            "conversation_a",
            "must follow a user",
        ),
    ],
)
def test_malformed_line_aborts_everything(
    populated: Engine, tmp_path: Path, line: str, field: str | None, match: str
) -> None:
    vote_on_new_battle(populated)
    before = {t: count(populated, t) for t in ("model", "battle", "vote", "message")}
    path = tmp_path / "bad.jsonl"
    good = [json.dumps({**GOOD, "battle_id": f"g{i}", "model_a": "new-model"}) for i in range(3)]
    path.write_text("\n".join([*good, line, good[0]]) + "\n")
    with pytest.raises(store.BattleImportError, match=match) as info:
        store.import_battles(engine=populated, path=path)
    err = info.value
    assert (err.source, err.line, err.field) == (str(path), 4, field)
    assert str(path) in str(err) and "line 4" in str(err)
    # All or nothing: not even the three good lines (nor their new model) were written.
    assert {t: count(populated, t) for t in before} == before


def test_import_is_one_transaction(populated: Engine, tmp_path: Path) -> None:
    """A failure while writing (here a name over the column limit that only the database
    catches on PostgreSQL, or any other error) leaves nothing behind either."""
    path = tmp_path / "ok.jsonl"
    recs = [{**GOOD, "battle_id": f"t{i}", "model_a": f"m{i}"} for i in range(2500)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    before = count(populated, "battle")

    calls: list[tuple[str, int]] = []

    def progress(phase: str, n: int) -> None:
        calls.append((phase, n))
        if phase == "write" and sum(k for p, k in calls if p == "write") > 1000:
            raise RuntimeError("disk full")  # after the first chunk went in

    with pytest.raises(RuntimeError, match="disk full"):
        store.import_battles(engine=populated, path=path, progress=progress)
    assert count(populated, "battle") == before and count(populated, "model") == 3
    assert sum(k for p, k in calls if p == "read") == 2500
    report = store.import_battles(engine=populated, path=path)
    assert report.inserted == 2500 and count(populated, "vote") == 2500


def test_cli_export_and_import(
    populated: Engine,
    make_db: Callable[[], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _votes(populated)
    src = populated.url.render_as_string(hide_password=False)
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    assert main(["export", "battles", "--out", str(first), "--db", src,
                 "--with-conversations", "--no-progress"]) == 0  # fmt: skip
    assert "wrote 3 battles" in capsys.readouterr().err
    dst = make_db()
    assert main(["import", "battles", str(first), "--db", dst, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "imported 3 battles" in err and "skipped 0 duplicates" in err
    assert main(["import", "battles", str(first), "--db", dst, "--no-progress"]) == 0
    assert "imported 0 battles" in capsys.readouterr().err
    assert main(["export", "battles", "--out", str(second), "--db", dst,
                 "--with-conversations", "--no-progress"]) == 0  # fmt: skip
    assert first.read_bytes() == second.read_bytes()
    since = ["--since", "2030-01-02T00:00:00+00:00"]
    out = tmp_path / "since.jsonl"
    assert main(["export", "battles", "--out", str(out), "--db", dst, *since]) == 0
    assert len(_lines(out)) == 1


def test_cli_reports_bad_input(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "winner": "x"}) + "\n")
    assert main(["import", "battles", str(bad), "--db", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"arena: error: {bad}, line 2, field 'winner': unknown winner")
    assert "nothing was imported" in err and count(engine, "battle") == 0
    assert main(["import", "battles", str(tmp_path / "missing.jsonl"), "--db", url]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["export", "battles", "--out", str(tmp_path / "x.csv"), "--db", url]) == 2
    assert ".jsonl" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["export", "battles", "--out", str(tmp_path / "x.jsonl"), "--since", "soon"])
    assert info.value.code == 2 and "expected a date" in capsys.readouterr().err


def test_cli_export_refuses_an_out_of_date_database(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    assert main(["export", "battles", "--out", str(out), "--db", db_url]) == 2
    assert "arena db upgrade --db" in capsys.readouterr().err and not out.exists()
