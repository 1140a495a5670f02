"""``arena admin``: make the settings of the admin page (docs/admin.md).

``hash-password`` reads the password from the terminal (asked twice) or, when stdin is not a
terminal, from its first line -- never from the command line, where ``ps`` and the shell
history would keep it.  It prints the ``ARENA_ADMIN_PASSWORD_HASH`` value.
``totp-secret`` prints a fresh ``ARENA_ADMIN_TOTP_SECRET`` and the ``otpauth://`` address an
authenticator app takes.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from arena.cli.common import fail

__all__ = ["register", "run_hash_password", "run_totp_secret"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "admin",
        help="make the admin page's password hash or TOTP secret",
        description="Settings for the admin page at /admin (docs/admin.md).",
    )
    actions = p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    h = actions.add_parser(
        "hash-password",
        help="print ARENA_ADMIN_PASSWORD_HASH for a password read from the terminal or stdin",
        description="Read the admin password (asked twice on a terminal; else the first line "
        "of stdin) and print its scrypt hash for ARENA_ADMIN_PASSWORD_HASH. The password is "
        "never taken from the command line.",
    )
    h.set_defaults(handler=run_hash_password)
    t = actions.add_parser(
        "totp-secret",
        help="print a new ARENA_ADMIN_TOTP_SECRET and its otpauth:// address",
        description="Print a fresh base32 TOTP secret for ARENA_ADMIN_TOTP_SECRET (second "
        "factor, RFC 6238: 6 digits, 30 s) and the otpauth:// address to enter in an "
        "authenticator app.",
    )
    t.add_argument(
        "--label", default="arena-admin", help="account name the app shows (default arena-admin)"
    )
    t.set_defaults(handler=run_totp_secret)


def run_hash_password(args: argparse.Namespace) -> int:
    from arena.admin.auth import AdminAuthError, hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("admin password: ")
        if getpass.getpass("again: ") != password:
            return fail("the two passwords differ; nothing printed")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        print(hash_password(password))
    except AdminAuthError as exc:
        return fail(str(exc))
    return 0


def run_totp_secret(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from arena.admin.auth import new_totp_secret

    secret = new_totp_secret()
    print(secret)
    print(f"otpauth://totp/Arena:{quote(args.label)}?secret={secret}&issuer=Arena", file=sys.stderr)
    return 0
