"""Options shared by ``arena ratings``, ``arena plots`` and ``arena audit``: where battles come
from (a file or the database) and how to rate them."""

from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from arena.cli.common import progress_bar
from ratings import BattleDataError, Battles, EloOptions, RatingOptions, read_battles
from ratings.bootstrap import ProgressBar, ProgressFactory
from ratings.leaderboard import CI_METHODS, METHODS, OptionError

__all__ = [
    "add_rating_arguments",
    "add_source_arguments",
    "apply_filters",
    "database_url",
    "drop_flagged_voters",
    "fragile_notes",
    "load_battles",
    "needs_context",
    "option_error_message",
    "options_from_args",
    "parse_anchor",
    "progress_factory",
    "select_category",
]


def parse_anchor(text: str) -> tuple[str, float]:
    """Parse ``MODEL=VALUE`` (the model name may itself contain ``=``)."""
    model, sep, value = text.rpartition("=")
    if not sep or not model:
        raise argparse.ArgumentTypeError(f"expected MODEL=VALUE, got {text!r}")
    try:
        return model, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"anchor value {value!r} is not a number") from None


# The tagger's categories (arena.features.CATEGORIES), spelled out so that --help needs no
# import of the tagger.
_CATEGORY_CHOICES = ("coding", "math", "multi_turn", "long_query", "hard_prompt")

_CLUSTER_ALIASES = {"judge": "judge", "user": "judge", "question_id": "question_id",
                    "prompt": "question_id"}  # fmt: skip


def _cluster_column(text: str) -> str:
    """``--cluster-by`` value -> battle-log column (``user``/``prompt`` are aliases)."""
    try:
        return _CLUSTER_ALIASES[text]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"invalid choice {text!r} (choose judge, question_id, or their aliases user, prompt)"
        ) from None


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """SOURCE (a battle file or a database URL) and the database options."""
    p.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="battle log (.jsonl/.ndjson/.json/.csv, optionally .gz, or .parquet) or a "
        "database URL (sqlite:///..., postgresql+psycopg://...)",
    )
    p.add_argument(
        "--db",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="read votes from the arena database (default URL: ARENA_DB_URL, else the SQLite "
        "file under ARENA_DATA_DIR)",
    )
    p.add_argument(
        "--include-named",
        action="store_true",
        help="also count side-by-side votes where the voter saw the model names",
    )
    p.add_argument(
        "--include-excluded",
        action="store_true",
        help="also count votes that carry an exclusion reason (the database's exclusion "
        "column, or the 'exclusion' field of a log written by arena export)",
    )


def add_rating_arguments(p: argparse.ArgumentParser) -> None:
    """Everything that determines the ratings (see ``ratings.RatingOptions``)."""
    g = p.add_argument_group("rating")
    g.add_argument("--method", choices=METHODS, default="bt", help="bt (default) or online elo")
    g.add_argument(
        "--ci",
        choices=CI_METHODS,
        default=None,
        help="confidence intervals: sandwich (default for bt), fisher (not with --cluster-by "
        "or weights), bootstrap, none (default for elo)",
    )
    g.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds (default 1000)")
    g.add_argument(
        "--cluster-by",
        type=_cluster_column,
        default=None,
        metavar="{judge,question_id}",
        help="resample (bootstrap) or sum scores (sandwich) by voter (judge; alias user) or "
        "by prompt (question_id; alias prompt)",
    )
    g.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    g.add_argument(
        "--anchor",
        type=parse_anchor,
        default=None,
        metavar="MODEL=VALUE",
        help="pin MODEL at rating VALUE inside the fit (every bootstrap round; a contrast for "
        "the sandwich): its interval has zero width, the others are relative to it "
        "(default: mean rating 1000)",
    )
    g.add_argument(
        "--min-battles",
        type=int,
        default=0,
        metavar="N",
        help="leave out models with fewer than N battles (default 0)",
    )
    g.add_argument(
        "--l2",
        type=float,
        default=RatingOptions.l2,
        help=f"ridge penalty of the BT fit (default {RatingOptions.l2:g}; 0 = pure MLE)",
    )
    g.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    g.add_argument("--elo-k", type=float, default=EloOptions.k, help="online Elo K (default 4)")
    g.add_argument("--elo-base", type=float, default=EloOptions.base, help="Elo base (10)")
    g.add_argument("--elo-scale", type=float, default=EloOptions.scale, help="Elo scale (400)")
    g.add_argument("--elo-init", type=float, default=EloOptions.init, help="Elo start (1000)")
    g.add_argument(
        "--reweight",
        action="store_true",
        help="database only: weight each vote by 1 / the probability its pair was drawn "
        "(undoes unequal exposure from the sampling policy)",
    )
    g.add_argument(
        "--exclude-flagged",
        action="store_true",
        help="leave out every vote of voters flagged by the rigging tests (per voter and "
        "model, sybil groups, agreement; see arena audit and docs/integrity.md; needs a judge "
        "column), and note models whose rating rests on a handful of voters",
    )
    g.add_argument(
        "--style-control",
        action="store_true",
        help="Bradley-Terry with LMArena's style covariates (answer tokens, headers, lists, "
        "bold: (a-b)/(a+b+1), standardised); needs conv_metadata in the log or style "
        "features in the database",
    )
    g.add_argument(
        "--style-l2",
        type=float,
        default=0.0,
        metavar="L2",
        help="ridge penalty on the style coefficients, summed-log-likelihood units "
        "(default 0; arena-rank's reg=r is r x the number of battles)",
    )
    g.add_argument(
        "--category",
        choices=_CATEGORY_CHOICES,
        default=None,
        help="rate only the battles tagged with this category (from the log's category_tag "
        "or the database's tags)",
    )
    g.add_argument(
        "--language",
        default=None,
        metavar="NAME",
        help="rate only the battles in this language (e.g. German; case-insensitive)",
    )
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


# RatingOptions field -> the flag that sets it: ratings/ speaks in option names, the command
# line in flags.
OPTION_FLAGS = {
    "method": "--method",
    "ci": "--ci",
    "rounds": "--rounds",
    "cluster_by": "--cluster-by",
    "seed": "--seed",
    "anchor": "--anchor",
    "min_battles": "--min-battles",
    "l2": "--l2",
    "level": "--level",
    "style_control": "--style-control",
    "style_l2": "--style-l2",
}


def option_error_message(exc: OptionError) -> str:
    """The message of an :class:`OptionError` in command-line terms (flag first)."""
    flag = OPTION_FLAGS.get(exc.option, exc.option)

    def as_flag(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in OPTION_FLAGS:
            return m.group(0)
        return OPTION_FLAGS[name] + (f" {m.group(2)}" if m.group(2) is not None else "")

    # option='value' -> --option value; a bare option name -> its flag
    text = re.sub(r"\b([a-z_0-9]+)(?:='([^']*)')?", as_flag, str(exc))
    return text if text.startswith(flag) else f"{flag}: {text}"


def options_from_args(args: argparse.Namespace) -> RatingOptions:
    """Build RatingOptions; raises ValueError with a clear message for bad combinations."""
    ci = args.ci or ("sandwich" if args.method == "bt" else "none")
    return RatingOptions(
        method=args.method,
        ci=ci,
        rounds=args.rounds,
        cluster_by=args.cluster_by,
        seed=args.seed,
        anchor=args.anchor,
        min_battles=args.min_battles,
        l2=args.l2,
        level=args.level,
        elo=EloOptions(k=args.elo_k, base=args.elo_base, scale=args.elo_scale, init=args.elo_init),
        style_control=getattr(args, "style_control", False),
        style_l2=getattr(args, "style_l2", 0.0),
    )


def database_url(args: argparse.Namespace) -> str | None:
    """The database SOURCE / ``--db`` names (``""``: the configured one), or None for a file.

    Raises
    ------
    BattleDataError
        Both SOURCE and ``--db``, or neither.
    """
    if args.source and args.db is not None:
        raise BattleDataError("arguments", "give either SOURCE or --db, not both")
    if args.db is not None:
        return str(args.db)
    if not args.source:
        raise BattleDataError(
            "arguments", "no SOURCE given (a battle file, a database URL, or --db)"
        )
    return str(args.source) if "://" in args.source else None


def load_battles(args: argparse.Namespace) -> Battles:
    """Read the battles named by SOURCE / ``--db``.

    Raises
    ------
    BattleDataError
        Bad or missing input (the message names where).
    """
    url = database_url(args)
    if url is None:
        if getattr(args, "reweight", False):
            raise BattleDataError(
                args.source,
                "--reweight needs the pair probabilities only the database stores "
                "(a log can carry its own 'weight' column instead)",
            )
        wanted = tuple(
            dict.fromkeys(
                c
                for c in (
                    getattr(args, "cluster_by", None),
                    "judge" if getattr(args, "exclude_flagged", False) else None,
                    # The sybil group test's address signal, when the log carries one.
                    "address_hash" if getattr(args, "exclude_flagged", False) else None,
                )
                if c
            )
        )
        return read_battles(
            args.source,
            include_named=args.include_named,
            include_excluded=args.include_excluded,
            cluster_columns=wanted,
            with_context=needs_context(args),
        )
    return _load_from_db(url, args)


def needs_context(args: argparse.Namespace) -> bool:
    """Whether the options read style counts, category tags or languages."""
    return bool(
        getattr(args, "style_control", False)
        or getattr(args, "category", None)
        or getattr(args, "language", None)
        or getattr(args, "by", None)
    )


def apply_filters(battles: Battles, args: argparse.Namespace) -> Battles:
    """Apply ``--category`` and ``--language``; the notes say what was kept.

    Raises
    ------
    BattleDataError
        The source has no tags (or languages), or no battle matches.
    """
    category = getattr(args, "category", None)
    language = getattr(args, "language", None)
    if category:
        battles = select_category(battles, category)
    if language:
        if battles.language is None or not any(x is not None for x in battles.language):
            raise BattleDataError(
                battles.source,
                "--language needs a language per battle (the log's 'language' field, or "
                "the database's tags: arena db backfill-style)",
                field="language",
            )
        want = language.strip().casefold()
        mask = np.array(
            [isinstance(x, str) and x.casefold() == want for x in battles.language], dtype=bool
        )
        if not mask.any():
            found = sorted({x for x in battles.language if isinstance(x, str)})
            raise BattleDataError(
                battles.source,
                f"no battles in language {language!r} (found: {', '.join(found[:12])})",
                field="language",
            )
        battles = battles.select(
            mask, f"--language {language}: kept {int(mask.sum())} of {len(battles)} battles"
        )
    return battles


def select_category(battles: Battles, category: str) -> Battles:
    """The battles tagged ``category``, with a note.

    Raises
    ------
    BattleDataError
        The source has no tags for this category, or no battle has it.
    """
    if category not in battles.categories:
        raise BattleDataError(
            battles.source,
            f"no {category!r} tags in this source (logs carry them in category_tag; for the "
            "database run arena db backfill-style)",
            field="category_tag",
        )
    mask = battles.categories[category]
    if not mask.any():
        hint = (
            " (hard_prompt needs a judge model; none tagged it)"
            if category == "hard_prompt"
            else ""
        )
        raise BattleDataError(
            battles.source, f"no battles tagged {category!r}{hint}", field="category_tag"
        )
    return battles.select(
        mask, f"--category {category}: kept {int(mask.sum())} of {len(battles)} battles"
    )


def drop_flagged_voters(battles: Battles, args: argparse.Namespace) -> Battles:
    """Apply ``--exclude-flagged``: drop the votes of voters the rigging tests flag."""
    if not getattr(args, "exclude_flagged", False):
        return battles
    from arena.integrity import flagged_voter_mask

    keep, n_flagged = flagged_voter_mask(battles)
    dropped = int((~keep).sum())
    note = f"--exclude-flagged left out {dropped} votes of {n_flagged} flagged voters"
    print(f"note: {note}", file=sys.stderr)
    return battles.select(keep, note) if dropped else battles.with_note(note)


def fragile_notes(battles: Battles, args: argparse.Namespace) -> tuple[str, ...]:
    """With ``--exclude-flagged``: a note for every model whose rating moves by more than its
    CI half-width when its few most influential voters are removed."""
    if not getattr(args, "exclude_flagged", False) or "judge" not in battles.clusters:
        return ()
    from arena.rigging import model_robustness

    return tuple(
        f"{r.model}: rating rests on a handful of voters (without its {r.k} most influential "
        f"it moves {r.drop:+.1f} / {r.lift:+.1f}, beyond its CI half-width {r.half_width:.1f})"
        for r in model_robustness(battles, battles.clusters["judge"])
        if r.fragile
    )


def _load_from_db(url: str, args: argparse.Namespace) -> Battles:
    from arena.config import Settings

    try:
        from arena import store
    except ImportError as exc:  # pragma: no cover - the store ships with the package
        raise BattleDataError(url or "database", f"the store is unavailable ({exc})") from None
    from sqlalchemy.exc import SQLAlchemyError

    settings = Settings.from_env()
    target = url or settings.resolved_db_url
    try:
        engine = store.open_engine(target)
    except (store.StoreError, SQLAlchemyError) as exc:
        # An out-of-date schema names its fix (arena db upgrade); a dead server says so.
        raise BattleDataError(store.redact_url(target), str(exc).splitlines()[0]) from None
    try:
        return store.battles_for_ratings(
            engine=engine,
            include_named=args.include_named,
            include_excluded=args.include_excluded,
            reweight=getattr(args, "reweight", False),
            # The two string columns cost about half the read: fetch them only when used.
            with_clusters=bool(
                getattr(args, "cluster_by", None) or getattr(args, "exclude_flagged", False)
            ),
            with_context=needs_context(args),
        )
    except SQLAlchemyError as exc:
        raise BattleDataError(
            store.redact_url(target), f"cannot read votes: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()


def progress_factory(args: argparse.Namespace, desc: str) -> ProgressFactory:
    """A progress-bar factory on stderr (off with --no-progress or when not a TTY)."""

    def make(total: int) -> ProgressBar:
        return progress_bar(total=total, desc=desc, unit="round", hidden=args.no_progress)

    return make
