"""``arena serve``: start the web app (``python app.py`` does the same)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from arena.cli.common import fail
from arena.config import Settings, SettingsError

__all__ = ["register", "run"]


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``arena serve`` / ``python app.py``; each overrides an ``ARENA_*`` variable."""
    p.add_argument("--host", help="address to listen on (ARENA_HOST; default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port to listen on (ARENA_PORT; default 7860)")
    p.add_argument(
        "--db",
        dest="db_url",
        metavar="URL",
        help="database URL (ARENA_DB_URL; default SQLite at ./arena-data/arena.db)",
    )
    p.add_argument(
        "--roster",
        metavar="FILE",
        help="model roster TOML (ARENA_ROSTER; default the bundled data/models.toml)",
    )
    p.add_argument(
        "--root-path",
        metavar="PATH",
        help="URL prefix when a reverse proxy serves the app under one, e.g. /arena "
        "(ARENA_ROOT_PATH)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="start the arena web app",
        description="Start the arena web app: battle, side-by-side and leaderboard tabs.",
    )
    add_serve_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load settings, roster, database and models, then serve until interrupted."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "httpx"):  # one line per migration step / per HTTP request
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = Settings.from_env().with_overrides(
            host=args.host,
            port=args.port,
            db_url=args.db_url,
            roster=args.roster,
            root_path=getattr(args, "root_path", None),
        )
    except SettingsError as exc:
        return fail(str(exc))

    # Imported here: gradio and torch take seconds to import, the other commands don't need them.
    from arena import store
    from arena.battles import Arena
    from arena.roster import RosterError
    from arena.standings import Standings
    from arena.ui import build_app

    def say(message: str) -> None:
        print(f"arena: {message}", file=sys.stderr, flush=True)

    try:
        arena = Arena.open(settings, say=say)
    except (RosterError, ValueError) as exc:  # a bad roster, sampling policy, ...
        return fail(str(exc))
    except store.SchemaOutOfDate as exc:
        print(f"arena: {exc}", file=sys.stderr)
        return 1
    say("loading models (the first start converts the bundled model once; later starts are fast)")
    asyncio.run(arena.load(say))
    standings = Standings(
        engine=arena.engine,
        roster=arena.roster,
        refresh_s=settings.leaderboard_refresh_s,
        min_battles=settings.min_battles,
        on_refresh=arena.refresh_policy,
    )
    # uvicorn (under Gradio) would otherwise believe X-Forwarded-For from loopback and
    # rewrite the client address before the arena sees it; the arena applies its own rule
    # (ARENA_TRUSTED_PROXIES, arena.integrity.client_address) to the real peer instead.
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    # Gradio's queue rebuilds a pandas summary of its last 10,000 events after every event
    # (for its monitoring page): ~15% of the app's CPU with 50 users.  Every 500 events is
    # plenty; an operator can still set these.
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "2000")
    demo = build_app(arena, standings)
    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    url = f"http://{settings.host}:{settings.port}"
    say(f"starting the web app on {url}")
    from starlette.middleware import Middleware

    from arena.admin import AdminAuthError
    from arena.admin.app import AdminMiddleware, admin_enabled
    from arena.ui.guard import GuardMiddleware
    from arena.ui.ops import OpsMiddleware
    from arena.ui.pow import WIDGET_HEAD, PowMiddleware
    from arena.ui.voter import VoterMiddleware

    middleware = [
        Middleware(GuardMiddleware),
        Middleware(VoterMiddleware, voters=arena.voters),
        Middleware(
            OpsMiddleware,
            engine=arena.engine,
            metrics=arena.metrics,
            models=arena.roster.names,
            metrics_token=settings.metrics_token,
        ),
    ]
    if arena.auth is not None:  # sign-in: its routes, and tampered person cookies refused
        from arena.ui.auth import AuthMiddleware

        middleware.append(
            Middleware(
                AuthMiddleware,
                config=arena.auth,
                people=arena.people,
                flows=arena.signer("sign-in flow cookie"),
                key_for=arena.person_key_for,
            )
        )
        say(f"sign-in is {arena.auth.mode.value} (provider {arena.auth.issuer})")
    try:  # /admin: 404 unless a password hash is set; a malformed one stops the start here
        admin_on = admin_enabled(settings)
    except AdminAuthError as exc:
        return fail(str(exc))
    middleware.append(
        Middleware(AdminMiddleware, arena=arena, secret=store.resolve_secret(settings))
    )
    if admin_on:
        say(f"admin page on {url}/admin (docs/admin.md)")
    if arena.pow is not None:  # proof of work before voting: its routes and its widget
        middleware.append(Middleware(PowMiddleware, pow=arena.pow))
        say(f"proof of work before voting is on (difficulty {arena.pow.difficulty})")
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        show_error=False,
        footer_links=["api"],
        # The arena has no file inputs: uploads are refused outright (GuardMiddleware), and
        # any that slipped through would be over the size limit (build_app also sweeps
        # Gradio's temporary files hourly).
        max_file_size=0,
        root_path=settings.root_path.rstrip("/") or None,
        app_kwargs={"middleware": middleware},
        head=WIDGET_HEAD if arena.pow is not None else None,
    )
    return 0
