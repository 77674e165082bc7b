"""The ``approle`` auth method: machines log in with a role ID and a secret ID, as with Vault's AppRole."""
