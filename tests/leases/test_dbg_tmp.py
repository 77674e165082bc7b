import asyncio, faulthandler, sys
from strongroom.core.logical import Secret

async def test_y(manager):
    await manager.register("database/creds/ro", "database/", Secret("creds", 60), "tok")
    print("registered")

def test_after():
    faulthandler.dump_traceback_later(5, exit=True)
