"""The TOTP secrets engine (Vault's ``totp``); see :mod:`strongroom.engines.totp.backend`."""
