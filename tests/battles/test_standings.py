"""The app's cached leaderboard, computed from real votes in a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from arena.battles import Arena
from arena.standings import COLUMNS, Standings


def test_leaderboard_counts_anonymous_votes_only_and_marks_preliminary(arena: Arena) -> None:
    board = Standings(engine=arena.engine, roster=arena.roster, refresh_s=3600, min_battles=5)
    empty = board.get()
    assert empty.rows == [] and "No counted votes yet" in empty.note

    async def battle(mode: str, winner: str) -> None:
        kw = {"models": ("alpha-greedy", "beta-concise")} if mode == "named" else {}
        updates = [
            u async for u in arena.turn(owner="o", user_key="k", prompt="Hi", mode=mode, **kw)
        ]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner=winner)

    asyncio.run(battle("anony", "a"))
    asyncio.run(battle("anony", "tie"))
    asyncio.run(battle("named", "a"))  # not counted: the voter knew the models

    assert board.get().n_battles == 0  # cached: not stale for an hour
    board.invalidate()
    snap = board.get(wait=True)
    assert snap.n_battles == 2
    assert len(snap.rows) == 2 and all(len(r) == len(COLUMNS) for r in snap.rows)
    assert {r[2] for r in snap.rows} == {"alpha-greedy *", "beta-concise *"}
    assert [r[COLUMNS.index("Battles")] for r in snap.rows] == [2, 2]
    for row in snap.rows:  # rank range reads best-worst
        best, _, worst = str(row[1]).partition("-")
        assert int(best) <= int(worst or best) and int(best) <= row[0] <= int(worst or best)
    assert "Preliminary" in snap.note and "2 counted anonymous votes" in snap.note
    assert snap.ci_figure is not None and snap.heatmap_figure is not None


def test_leaderboard_refresh_feeds_an_active_sampling_policy(arena: Arena) -> None:
    from arena.sampling import make_policy

    arena.policy = make_policy("active", ["alpha-greedy", "beta-concise"])
    board = Standings(
        engine=arena.engine,
        roster=arena.roster,
        refresh_s=0,
        min_battles=1,
        on_refresh=arena.refresh_policy,
    )

    async def battle() -> str:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt="Hi")]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner="a")
        return updates[-1].battle_id

    first = asyncio.run(battle())
    assert arena.policy.version == "2-init"
    board.get(wait=True)
    assert arena.policy.version.startswith("2-") and arena.policy.version != "2-init"
    second = asyncio.run(battle())
    stored = (
        arena.engine.connect()
        .exec_driver_sql("SELECT id, policy_name, policy_version FROM battle ORDER BY created_at")
        .all()
    )
    assert [(r[0], r[1]) for r in stored] == [(first, "active"), (second, "active")]
    assert stored[0][2] == "2-init" and stored[1][2] == arena.policy.version


def test_deprecation_is_an_event_and_the_leaderboard_marks_it(arena: Arena) -> None:
    from sqlalchemy import text

    from arena.cli import main

    async def battle() -> None:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt="Hi")]
        await arena.vote(owner="o", user_key="k", battle_id=updates[-1].battle_id, winner="a")

    asyncio.run(battle())
    url = arena.settings.resolved_db_url
    assert main(["models", "deprecate", "alpha-greedy", "--db", url, "--reason", "retired"]) == 0
    assert main(["models", "deprecate", "no-such-model", "--db", url]) == 2
    board = Standings(engine=arena.engine, roster=arena.roster, refresh_s=0, min_battles=1)
    snap = board.get(wait=True)
    names = {r[2] for r in snap.rows}
    assert names == {"alpha-greedy (deprecated)", "beta-concise"}
    assert "Deprecated models (alpha-greedy)" in snap.note and snap.n_battles == 1
    assert [r[2] for r in snap.shown_rows(include_deprecated=False)] == ["beta-concise"]
    with arena.engine.connect() as conn:
        kinds = (
            conn.execute(
                text(
                    "SELECT e.kind FROM model_event e JOIN model m ON m.id = e.model_id "
                    "WHERE m.name = 'alpha-greedy' ORDER BY e.id"
                )
            )
            .scalars()
            .all()
        )
    assert kinds[-1] == "deprecated"


def test_model_names_reach_the_leaderboard_note_as_literal_text(tmp_path: Path) -> None:
    """A name imported from a log must not become HTML, a link or an image (issue 11)."""
    from arena import store
    from arena.markup import escape_markdown
    from arena.roster import parse_roster

    hostile = '<img src="http://127.0.0.1:9/x.png">'
    link = "[Log in to vote](http://127.0.0.1:9/login)"
    image = "![pixel](http://127.0.0.1:9/p.png)"
    names = [hostile, link, image]
    engine = store.open_engine(f"sqlite:///{tmp_path / 'a.db'}", create_if_empty=True)
    with store.new_session(engine) as s:
        for n in names:
            store.upsert_model(session=s, name=n, backend="imported")
        for i in range(6):
            a, b = names[i % 3], names[(i + 1) % 3]
            bid = store.create_battle(
                session=s,
                mode="anony",
                model_a=a,
                model_b=b,
                user_key="k",
                pair_probability=1 / 3,
                policy_name="uniform",
                policy_version="1",
            ).id
            store.append_message(session=s, battle_id=bid, turn=1, side="user", content="q")
            for side in "ab":
                store.append_message(session=s, battle_id=bid, turn=1, side=side, content="x")
            store.set_status(session=s, battle_id=bid, status="ready")
            store.record_vote(session=s, battle_id=bid, winner="model_a", user_key="k")
        store.deprecate_model(session=s, name=hostile)
    roster = parse_roster(
        {"models": [{"name": "ok", "backend": "openai", "model": "x", "base_url": "http://h/v1"}]},
        path=tmp_path / "r.toml",
    )
    snap = Standings(engine=engine, roster=roster, refresh_s=0, min_battles=50).get(wait=True)
    assert snap.n_battles == 6
    for raw in ("<img", "](http", "![", "<a "):
        assert raw not in snap.note, raw
    for n in names:  # each name is there, escaped, so a reader still sees it
        assert escape_markdown(n) in snap.note


def test_escape_markdown_renders_back_to_the_same_text() -> None:
    import html as html_lib

    from markdown_it import MarkdownIt

    from arena.markup import escape_markdown

    md = MarkdownIt("commonmark").enable("strikethrough").enable("table")
    for text in [
        '<img src="http://x/y">',
        "![a](http://x/y.png)",
        "[link](http://x)",
        "**bold** _it_ `code` ~~s~~",
        "# heading",
        "- item",
        "+ item",
        "1. item",
        "2) item",
        "> quote",
        "a\\b|c~d>e & f",
        "model-1.5 (chat) + extra",
        "<http://autolink.example>",
    ]:
        rendered = md.render(escape_markdown(text))
        for tag in (
            "<img",
            "<a ",
            "<strong>",
            "<em>",
            "<code>",
            "<h1",
            "<li",
            "<blockquote",
            "<s>",
        ):
            assert tag not in rendered, (text, rendered)
        inner = rendered.strip().removeprefix("<p>").removesuffix("</p>")
        assert html_lib.unescape(inner) == text, (text, rendered)


def test_category_and_style_control_views(arena: Arena) -> None:
    """Battles answered through the backend machinery (scripted models), voted, then given
    their features the way the vote path does (record_for_battle); the category view and
    the style-controlled view are computed from them."""
    from arena import store
    from arena.features import Tagger, record_for_battle
    from arena.standings import View

    tagger = Tagger(("English", "German"))
    prompts = ["Solve 2x + 3 = 7 for x.", "Hello, how are you today?",
               "What is 12 * 12?", "Name a colour of the sky."]  # fmt: skip

    async def battle(prompt: str, winner: str) -> str:
        updates = [u async for u in arena.turn(owner="o", user_key="k", prompt=prompt)]
        bid = updates[-1].battle_id
        await arena.vote(owner="o", user_key="k", battle_id=bid, winner=winner)
        return bid

    for k, prompt in enumerate(prompts):
        bid = asyncio.run(battle(prompt, "a" if k % 2 else "b"))
        with store.new_session(arena.engine) as s:
            row = record_for_battle(session=s, battle_id=bid, tagger=tagger)
        assert row.sum_assistant_a_tokens > 0 and row.language == "English"
    board = Standings(engine=arena.engine, roster=arena.roster, refresh_s=3600, min_battles=1)
    assert board.get(wait=True).n_battles == 4
    math = board.get(View("math"), wait=True)
    assert math.n_battles == 2 and math.note.startswith("Math:")
    coding = board.get(View("coding"), wait=True)
    assert coding.rows == [] and "No counted votes in this category" in coding.note
    styled = board.get(View(None, True), wait=True)
    assert styled.n_battles == 4 and "Style-controlled" in styled.note
    assert "on top. Style coefficients" in styled.note
    p1 = [float(str(r[COLUMNS.index("P(#1)")]).rstrip("%")) for r in styled.rows]
    assert abs(sum(p1) - 100.0) < 0.2
