"""battle_features on a real database: record_for_battle at vote time, backfill, retag, and
the ratings read of style counts, tags and languages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from arena import store
from arena.cli import main
from arena.features import Tagger, backfill_style, record_for_battle, retag
from arena.store.features import get_battle_features

from .helpers import USER

LANGS = ("English", "German", "French")

ANSWER_A = "# Plan\n\n1. **First** step\n2. Second\n\n```\n# code, not a header\n```\n"
ANSWER_B = "Just do it.\n\n- one\n- two __now__\n"


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(LANGS)


def _answered_battle(
    engine: Engine, prompts: list[str], *, tokens: tuple[int | None, int | None] = (120, 30)
) -> str:
    """A battle through the store's write path: prompts and both sides' answers per turn."""
    with store.new_session(engine) as s:
        b = store.create_battle(session=s, mode="anony", model_a="alpha", model_b="beta",
                                user_key=USER, pair_probability=1 / 6, policy_name="uniform",
                                policy_version="1")  # fmt: skip
        for turn, prompt in enumerate(prompts, 1):
            store.append_message(session=s, battle_id=b.id, turn=turn, side="user",
                                 content=prompt)  # fmt: skip
            store.append_message(session=s, battle_id=b.id, turn=turn, side="a",
                                 content=ANSWER_A, token_count=tokens[0])  # fmt: skip
            store.append_message(session=s, battle_id=b.id, turn=turn, side="b",
                                 content=ANSWER_B, token_count=tokens[1])  # fmt: skip
        store.set_status(session=s, battle_id=b.id, status="ready")
        return b.id


def _vote(engine: Engine, battle_id: str, winner: str = "model_a") -> None:
    with store.new_session(engine) as s:
        store.record_vote(session=s, battle_id=battle_id, winner=winner, user_key=USER)


def test_record_for_battle_after_the_vote(populated: Engine, tagger: Tagger) -> None:
    bid = _answered_battle(populated, ["Wie schreibe ich eine Funktion in Python?", "Und in Java?"])
    _vote(populated, bid)
    with store.new_session(populated) as s:
        row = record_for_battle(session=s, battle_id=bid, tagger=tagger)
        again = get_battle_features(session=s, battle_id=bid)
    assert again is not None and again.battle_id == bid
    assert row.turns == 2
    # The backend's counts, summed over the two turns.
    assert (row.sum_assistant_a_tokens, row.sum_assistant_b_tokens) == (240, 60)
    assert (row.header_a_h1, row.list_a_ordered, row.bold_a_star) == (2, 4, 2)
    assert (row.list_b_unordered, row.bold_b_under, row.header_b_h1) == (4, 2, 0)
    assert row.language == "German" and row.tag_coding and row.tag_multi_turn
    assert not row.tag_long_query and row.tag_hard_prompt is None
    assert row.tagger_version == tagger.version
    # Recording twice replaces the row instead of failing.
    with store.new_session(populated) as s:
        record_for_battle(session=s, battle_id=bid, tagger=tagger)


def test_record_refuses_unknown_and_unanswered_battles(populated: Engine, tagger: Tagger) -> None:
    with store.new_session(populated) as s:
        with pytest.raises(store.BattleNotFound):
            from arena.store.features import save_battle_features

            save_battle_features(session=s, battle_id="nope", values={"turns": 1})
        b = store.create_battle(session=s, mode="anony", model_a="alpha", model_b="beta",
                                user_key=USER, pair_probability=0.5, policy_name="uniform",
                                policy_version="1")  # fmt: skip
        with pytest.raises(ValueError, match="no answers on both sides"):
            record_for_battle(session=s, battle_id=b.id, tagger=tagger)


def test_backfill_then_ratings_read_the_context(populated: Engine, tagger: Tagger) -> None:
    ids = [
        _answered_battle(populated, ["Solve 3x + 5 = 20 for x, please."]),
        _answered_battle(populated, ["Write me a poem about autumn leaves."], tokens=(None, 5)),
        _answered_battle(populated, ["Raconte-moi une histoire de dragons."]),
    ]
    for bid in ids:
        _vote(populated, bid)
    assert backfill_style(engine=populated, tagger=tagger) == 3
    assert backfill_style(engine=populated, tagger=tagger) == 0  # nothing left to do
    battles = store.battles_for_ratings(engine=populated, with_context=True)
    assert battles.style is not None and battles.style.shape == (3, 4, 2)
    np.testing.assert_array_equal(battles.style[0, :, 0], [120, 1, 2, 1])
    np.testing.assert_array_equal(battles.style[0, :, 1], [30, 0, 2, 1])
    # A backend that counted nothing gets the estimate, never a zero.
    assert battles.style[1, 0, 0] > 0
    assert battles.categories["math"].tolist() == [True, False, False]
    assert battles.language is not None
    assert battles.language.tolist() == ["English", "English", "French"]
    # Without the flag the read stays as before.
    assert store.battles_for_ratings(engine=populated).style is None


def test_votes_without_features_read_as_unknown(populated: Engine, tagger: Tagger) -> None:
    first = _answered_battle(populated, ["Hello there, how are you today?"])
    second = _answered_battle(populated, ["What is the capital of France?"])
    _vote(populated, first)
    _vote(populated, second, "model_b")
    with store.new_session(populated) as s:
        record_for_battle(session=s, battle_id=second, tagger=tagger)
    battles = store.battles_for_ratings(engine=populated, with_context=True)
    assert battles.style is not None
    assert np.isnan(battles.style[0]).all() and np.isfinite(battles.style[1]).all()
    assert battles.language is not None and battles.language[0] is None


def test_retag_rewrites_old_versions_only(populated: Engine, tagger: Tagger) -> None:
    old = _answered_battle(populated, ["Compute the integral of x squared."])
    new = _answered_battle(populated, ["Tell me about the history of Rome."])
    for bid in (old, new):
        _vote(populated, bid)
    backfill_style(engine=populated, tagger=tagger)
    with populated.begin() as conn:
        conn.execute(
            text("UPDATE battle_features SET tagger_version = 'tags-0', tag_math = :f, "
                 "sum_assistant_a_tokens = 7 WHERE battle_id = :b"),
            {"b": old, "f": False},
        )  # fmt: skip
    assert retag(engine=populated, tagger=tagger) == 1
    with store.new_session(populated) as s:
        row = get_battle_features(session=s, battle_id=old)
    assert row is not None and row.tag_math and row.tagger_version == tagger.version
    assert row.sum_assistant_a_tokens == 7  # retag leaves the style counts alone
    assert retag(engine=populated, tagger=tagger) == 0
    assert retag(engine=populated, tagger=tagger, everything=True) == 2


def test_db_commands(
    populated: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("ARENA_TAG_LANGUAGES", ",".join(LANGS))
    bid = _answered_battle(populated, ["Write a SQL query that counts rows."])
    _vote(populated, bid)
    assert main(["db", "backfill-style", "--db", db_url]) == 0
    assert "1 battles style features and tags computed" in capsys.readouterr().err
    assert main(["db", "retag", "--db", db_url, "--all"]) == 0
    assert "1 battles retagged with tags-1" in capsys.readouterr().err
    monkeypatch.setenv("ARENA_TAG_LANGUAGES", "English,Klingon")
    assert main(["db", "retag", "--db", db_url]) == 2
    err = capsys.readouterr().err
    assert "ARENA_TAG_LANGUAGES" in err and "Klingon" in err and "Traceback" not in err


def test_export_carries_conv_metadata_and_tags_that_read_back(
    populated: Engine, tagger: Tagger, tmp_path: Path
) -> None:
    import json

    from ratings.readers import read_battles

    ids = [
        _answered_battle(populated, ["Write a bash script that lists files."]),
        _answered_battle(populated, ["Erzähl mir eine Geschichte über Katzen."], tokens=(9, 99)),
    ]
    for bid in ids:
        _vote(populated, bid)
    backfill_style(engine=populated, tagger=tagger)
    _vote(populated, _answered_battle(populated, ["No features for this one."]), "tie")
    out = tmp_path / "export.jsonl"
    assert main(["export", "battles", "--db", str(populated.url.render_as_string(False)),
                 "--out", str(out)]) == 0  # fmt: skip
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {r["battle_id"]: r for r in recs}
    first = by_id[ids[0]]
    assert first["conv_metadata"]["sum_assistant_a_tokens"] == 120
    assert first["conv_metadata"]["header_count_a"]["h1"] == 1
    assert first["conv_metadata"]["bold_count_b"] == {"**": 0, "__": 1}
    assert first["category_tag"]["coding"] is True and "hard_prompt" not in first["category_tag"]
    assert by_id[ids[1]]["language"] == "German"
    assert sum("conv_metadata" in r for r in recs) == 2
    from_file = read_battles(out)
    from_db = store.battles_for_ratings(engine=populated, with_context=True)
    assert from_file.style is not None and from_db.style is not None
    # Both in vote order; the vote without features reads as unknown from either.
    np.testing.assert_array_equal(from_file.style, from_db.style)
    assert np.isnan(from_file.style[2]).all()


def test_export_import_export_keeps_style_and_tags(
    populated: Engine, tagger: Tagger, make_db: object, tmp_path: Path
) -> None:
    ids = [
        _answered_battle(populated, ["Write a bash script that lists files."]),
        _answered_battle(populated, ["Erzähl mir eine Geschichte über Katzen."], tokens=(9, 99)),
    ]
    for bid in ids:
        _vote(populated, bid)
    backfill_style(engine=populated, tagger=tagger)
    _vote(populated, _answered_battle(populated, ["No features for this one."]), "tie")
    first, second = tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"
    for with_conversations in (False, True):
        target_url = make_db()  # type: ignore[operator]
        target = store.open_engine(target_url, check=False)
        store.upgrade(target)
        store.export_battles(engine=populated, out=first, with_conversations=with_conversations)
        store.import_battles(engine=target, path=first)
        store.export_battles(engine=target, out=second, with_conversations=with_conversations)
        assert first.read_bytes() == second.read_bytes()
        # Imported tags survive a retag when the conversation did not come along.
        retag(engine=target, tagger=tagger, everything=True)
        store.export_battles(engine=target, out=second, with_conversations=with_conversations)
        if not with_conversations:
            assert first.read_bytes() == second.read_bytes()
        back = store.battles_for_ratings(engine=target, with_context=True)
        here = store.battles_for_ratings(engine=populated, with_context=True)
        assert back.style is not None and here.style is not None
        np.testing.assert_array_equal(back.style, here.style)
        target.dispose()


def test_import_refuses_bad_conv_metadata(populated: Engine, tmp_path: Path) -> None:
    import json

    bad = tmp_path / "bad.jsonl"
    rec = {"model_a": "alpha", "model_b": "beta", "winner": "tie", "tstamp": 1.7e9,
           "conv_metadata": {"sum_assistant_a_tokens": -1}}  # fmt: skip
    bad.write_text(json.dumps(rec) + "\n")
    with pytest.raises(store.BattleImportError) as info:
        store.import_battles(engine=populated, path=bad)
    assert "conv_metadata.sum_assistant_a_tokens" in str(info.value)
