"""The multi-party-authorisation broker: privileged credentials only with another engineer's approval.

A separate service (``strongroom broker --config FILE``) with its own storage and HTTP API. Engineers authenticate
with the company IdP's ID token; each credential kind is configured with who may request and approve it. A request is
reviewed by others (never its requester), and the credential is minted when the requester fetches it — once, bound
to the request id, living no longer than the approved window. Every state change is a hash-chained audit event, sent
to the Strongroom server and to Slack. Break-glass issues without approval but pages loudly and stays open until
acknowledged. The broker's own seed keys open only for an attested build whose measurement is on the allowed list.

Modules: ``config`` (the TOML file), ``models``/``reasons`` (a request and its rules), ``service`` (the state
machine), ``store`` (SQLite/PostgreSQL), ``app`` (HTTP), ``idp`` (who is calling), ``oidc`` (the broker as an
issuer), ``kinds/`` (what a request turns into), ``events``/``audit_log``/``notify``/``retry`` (the record and its
fan-out), ``seed``/``attestation/``/``build``/``startup`` (keys released only to a trusted build), ``runtime`` and
``server`` (assembly).
"""
