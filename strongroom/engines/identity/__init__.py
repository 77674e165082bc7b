"""The ``identity/`` backend: Vault's entity, entity-alias, group, group-alias and lookup APIs."""
