"""``strongroom broker --config FILE``: unseal the seed through attestation, then serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from strongroom.broker.app import BrokerApp
from strongroom.broker.config import load_config
from strongroom.broker.runtime import BrokerRuntime
from strongroom.broker.startup import unseal


def serve(config_file: str) -> None:
    config = load_config(config_file)
    seed, measured = unseal(config)
    runtime = BrokerRuntime(config, seed, measurement=measured)
    host, port = config.host_port
    uvicorn.run(BrokerApp(runtime), host=host, port=port, log_level="info", lifespan="on", access_log=False)
