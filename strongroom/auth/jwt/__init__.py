"""The ``jwt`` (also ``oidc``) auth method: staff log in with a token from the company IdP."""
