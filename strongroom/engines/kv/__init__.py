"""The KV secrets engine (version 2 with version 1 passthrough); see :mod:`strongroom.engines.kv.backend`."""
