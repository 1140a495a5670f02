"""The admin page at ``/admin`` (issue 17): a live roster, battles and votes by filter, audit
findings, the moderation queue, exports, and an audit log of every action.

One module per idea:

``auth``      password hash, TOTP, session cookie, CSRF token
``actions``   each admin action: the store change, the audit-log row, the local re-sync
``pages``     server-rendered HTML (every value escaped)
``app``       the ASGI middleware that routes ``/admin`` and checks the login

Off unless ``ARENA_ADMIN_PASSWORD_HASH`` is set.  See docs/admin.md.
"""

from __future__ import annotations

from arena.admin.auth import AdminAuthError, hash_password, verify_password

__all__ = ["AdminAuthError", "hash_password", "verify_password"]
