"""Proof of work against scripted voters: ALTCHA challenges, solved once per browser.

A browser fetches a challenge, finds the number whose SHA-256 (with the challenge's salt)
matches -- on average ``difficulty / 2`` hashes, a second or so in a browser and a real cost
for a script that votes thousands of times -- and posts the solution.  A valid, unexpired,
unused solution earns a signed pass (a cookie, see :mod:`arena.ui.pow`); a vote without a
valid pass is refused (``no_proof_of_work``).  Challenges and their verification are the
``altcha`` package's (protocol v1); the pass is HMAC-signed with the arena's secret, so
every replica accepts every replica's passes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from typing import Any

from altcha import ChallengeOptionsV1, create_challenge_v1, verify_solution_v1

__all__ = ["ProofOfWork"]

# Solutions remembered against replay (each ~100 bytes); older ones have expired anyway.
_MAX_REMEMBERED = 500_000


class ProofOfWork:
    """Issue and check challenges, and sign and check passes.

    Parameters
    ----------
    secret
        The arena's secret (HMAC key for challenges and passes).
    difficulty
        The largest number a challenge may hide (the expected work is half of it).
    challenge_ttl_s
        How long a challenge may be solved.
    pass_ttl_s
        How long a pass lasts (a browser solves again after it).
    """

    def __init__(
        self,
        secret: str,
        *,
        difficulty: int,
        challenge_ttl_s: float = 600.0,
        pass_ttl_s: float = 24 * 3600.0,
    ) -> None:
        if difficulty < 1:
            raise ValueError(f"difficulty must be >= 1, got {difficulty}")
        self._key = hashlib.sha256(b"arena-pow:" + secret.encode()).hexdigest()
        self.difficulty = difficulty
        self.challenge_ttl_s = challenge_ttl_s
        self.pass_ttl_s = pass_ttl_s
        self._used: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def challenge(self) -> dict[str, Any]:
        """A fresh challenge, as the JSON the widget reads."""
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.challenge_ttl_s)
        c = create_challenge_v1(
            ChallengeOptionsV1(hmac_key=self._key, max_number=self.difficulty, expires=expires)
        )
        return {
            "algorithm": c.algorithm,
            "challenge": c.challenge,
            "maxnumber": c.max_number,
            "salt": c.salt,
            "signature": c.signature,
        }

    def redeem(self, payload: str) -> str | None:
        """Check a solution; return a signed pass, or ``None`` (invalid, expired, or used).

        Parameters
        ----------
        payload
            The widget's base64 JSON ``{algorithm, challenge, number, salt, signature}``.
        """
        try:
            ok, _err = verify_solution_v1(payload, self._key, check_expires=True)
        except Exception:  # any malformed payload is just not a solution
            return None
        if not ok:
            return None
        digest = hashlib.sha256(payload.encode()).hexdigest()
        now = time.time()
        with self._lock:
            if digest in self._used:
                return None  # a replayed solution
            self._used[digest] = now
            while len(self._used) > _MAX_REMEMBERED:
                self._used.popitem(last=False)
        return self._sign(now + self.pass_ttl_s)

    def _sign(self, expires_at: float) -> str:
        body = f"{int(expires_at)}"
        mac = hmac.new(self._key.encode(), body.encode(), hashlib.sha256).hexdigest()
        return f"{body}.{mac}"

    def valid_pass(self, token: str | None) -> bool:
        """Whether ``token`` is a pass this arena signed and that has not expired."""
        if not token or "." not in token:
            return False
        body, _, mac = token.partition(".")
        expected = hmac.new(self._key.encode(), body.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, expected):
            return False
        try:
            return float(body) > time.time()
        except ValueError:
            return False
