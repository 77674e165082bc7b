"""The ``jwt`` (also ``oidc``) auth method: staff log in with a token from the company IdP.

Setting it up so that IdP group membership decides policies (least privilege)::

    vault auth enable jwt
    vault write auth/jwt/config oidc_discovery_url=https://idp.bank.example   # or jwks_url= / jwt_validation_pubkeys=
    vault write auth/jwt/role/staff role_type=jwt user_claim=sub groups_claim=groups \\
        bound_audiences=strongroom claim_mappings=email=email token_ttl=1h
    vault write identity/group name=eng type=external policies=eng                    # → group id G
    vault write identity/group-alias name=eng mount_accessor=<accessor of auth/jwt> canonical_id=G

A staff member's token is tied to their user ID (the ``user_claim`` value is the entity alias name, so every login of
the same person lands on the same entity and the audit trail shows it); ``eng`` in their groups claim makes their
entity a member of G for as long as the IdP keeps saying so (membership is refreshed at every login).
"""
