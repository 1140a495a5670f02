"""Password hashes, TOTP codes, session cookies and CSRF tokens (arena.admin.auth), and the
``arena admin`` commands that make the settings."""

from __future__ import annotations

import base64
import io

import pytest

from arena.admin.auth import (
    AdminAuthError,
    SessionSigner,
    hash_password,
    parse_password_hash,
    totp,
    verify_password,
    verify_totp,
)
from arena.cli import main

from .conftest import PASSWORD, PASSWORD_HASH

# RFC 6238 appendix B: the SHA-1 key and its 8-digit codes.
RFC_KEY = base64.b32encode(b"12345678901234567890").decode()
RFC_CODES = {
    59: "94287082",
    1111111109: "07081804",
    1111111111: "14050471",
    1234567890: "89005924",
    2000000000: "69279037",
    20000000000: "65353130",
}


def test_a_hash_verifies_its_password_only() -> None:
    assert verify_password(PASSWORD, PASSWORD_HASH)
    for wrong in ("", PASSWORD.upper(), PASSWORD + " ", PASSWORD[:-1]):
        assert not verify_password(wrong, PASSWORD_HASH), wrong
    spec = parse_password_hash(PASSWORD_HASH)
    assert (spec.log2_n, spec.r, spec.p, len(spec.salt), len(spec.key)) == (15, 8, 1, 16, 32)
    # Salted: the same password never hashes the same twice.
    assert hash_password(PASSWORD) != PASSWORD_HASH
    # Same salt, same hash (the format is stable).
    assert hash_password(PASSWORD, salt=spec.salt) == PASSWORD_HASH
    with pytest.raises(AdminAuthError, match="must not be empty"):
        hash_password("")


def test_totp_matches_the_rfc_6238_vectors() -> None:
    for at, code in RFC_CODES.items():
        assert totp(RFC_KEY, at, digits=8) == code, at
    assert totp(RFC_KEY, 59) == "287082"  # 6 digits: the last six of the same number


def test_totp_accepts_one_step_of_drift_and_nothing_else() -> None:
    at = 1_700_000_000.0
    now = totp(RFC_KEY, at)
    assert verify_totp(RFC_KEY, now, at=at)
    assert verify_totp(RFC_KEY, totp(RFC_KEY, at - 30), at=at)
    assert verify_totp(RFC_KEY, totp(RFC_KEY, at + 30), at=at)
    assert not verify_totp(RFC_KEY, totp(RFC_KEY, at - 90), at=at)
    for junk in ("", "abcdef", now + "0", " "):
        assert not verify_totp(RFC_KEY, junk, at=at), junk
    assert verify_totp(RFC_KEY, f"{now[:3]} {now[3:]}", at=at)  # as apps show it
    with pytest.raises(AdminAuthError, match="not base32"):
        totp("1!", at)
    with pytest.raises(AdminAuthError, match="too short"):
        totp("AAAA", at)


def test_sessions_expire_and_csrf_tokens_belong_to_one_session() -> None:
    signer = SessionSigner("s" * 40, PASSWORD_HASH, max_age_s=100)
    token = signer.issue("ann", now=1000)
    session = signer.read(token, now=1050)
    assert session is not None and session.actor == "ann"
    assert signer.read(token, now=1101) is None  # expired
    assert signer.read(token, now=990) is None  # from the future
    other = signer.read(signer.issue("ann", now=1000), now=1050)
    assert other is not None
    assert signer.check_csrf(session, signer.csrf_token(session))
    assert not signer.check_csrf(session, signer.csrf_token(other))
    assert not signer.check_csrf(session, None) and not signer.check_csrf(session, "")
    # Another arena secret does not accept this arena's cookies.
    assert SessionSigner("t" * 40, PASSWORD_HASH).read(token, now=1050) is None
    for junk in (None, "", "a.b.c", "nodot", "e30.AAAA"):
        assert signer.read(junk, now=1050) is None


def test_cli_hash_password_reads_stdin_and_never_argv(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\nignored\n"))
    assert main(["admin", "hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert verify_password("s3cret pass", printed) and not verify_password("ignored", printed)
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert main(["admin", "hash-password"]) == 2
    assert "must not be empty" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no password argument exists
        main(["admin", "hash-password", "hunter2"])


def test_cli_totp_secret_prints_a_usable_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["admin", "totp-secret", "--label", "ops"]) == 0
    out = capsys.readouterr()
    secret = out.out.strip()
    assert len(base64.b32decode(secret)) == 20
    assert f"secret={secret}" in out.err and "Arena:ops" in out.err
    assert verify_totp(secret, totp(secret, 1e9), at=1e9)
