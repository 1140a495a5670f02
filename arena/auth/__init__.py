"""Sign-in for team arenas: OpenID Connect (authorization code flow with PKCE, through
Authlib), access rules on email domain and group, and the signed person cookie.

* :mod:`arena.auth.config` -- the settings, checked as a whole (:func:`auth_config`);
* :mod:`arena.auth.people` -- who a signed-in person is to the arena (:class:`Person`, a keyed
  id only), the person cookie, and the access rules;
* :mod:`arena.auth.oidc` -- talking to the provider (discovery, the authorization URL, the
  code exchange, ID token checks).

The HTTP routes live in :mod:`arena.ui.auth`.  docs/auth.md is the operator's guide.
"""

from arena.auth.config import AuthConfig, AuthMode, auth_config
from arena.auth.people import AccessRules, Person, PersonCookies

__all__ = ["AccessRules", "AuthConfig", "AuthMode", "Person", "PersonCookies", "auth_config"]
