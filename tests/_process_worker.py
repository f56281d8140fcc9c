"""One worker process for tests/test_multiprocess.py (run as a script, not collected).

Its single argument is a JSON object: ``cache`` (a directory, or null for no cache),
``lock`` (JSONFileCache's flag), ``role``, ``policy`` (RefreshPolicy fields), ``go``
(wait for a line on stdin before starting: the test starts them all at once), ``run_seconds`` (how
long to keep asking for credentials after the first) and ``interval`` (between asks).
STS and the parent's credentials come from the environment (the loopback STS's
``environ()``).

It prints one JSON line: ``first_seconds`` (from "go" to the first credentials: the
first refresh), ``keys`` (how many different access keys it saw: a count, never a
key) and ``errors`` (asks that raised), then exits. It prints ``ready`` first, so the
test knows the imports are done.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from aiobotocore.session import AioSession

from aio_assume_role_lib import JSONFileCache, RefreshPolicy, assume_role


async def main(options: dict[str, Any]) -> dict[str, Any]:
    parent = AioSession()
    cache = (
        JSONFileCache(options["cache"], lock=options.get("lock", True))
        if options.get("cache")
        else None
    )
    policy = RefreshPolicy(**options.get("policy", {}))
    # Load the STS model now, not inside the measured refresh (on a busy 2-core machine
    # that takes a second, and the tests set short deadlines).
    async with parent.create_client("sts"):
        pass
    # Everything but the refresh before "ready", so first_seconds is the refresh alone.
    child = await assume_role(
        parent, options["role"], RoleSessionName="multiprocess", cache=cache, refresh=policy
    )
    credentials = await child.get_credentials()
    print("ready", flush=True)
    if options.get("go"):
        sys.stdin.readline()  # nothing else runs on this loop yet
    started = time.monotonic()
    frozen = await credentials.get_frozen_credentials()
    first_seconds = time.monotonic() - started
    keys = {frozen.access_key}
    errors = 0
    end = started + options.get("run_seconds", 0)
    while time.monotonic() < end:
        await asyncio.sleep(options.get("interval", 0.05))
        try:
            keys.add((await credentials.get_frozen_credentials()).access_key)
        except Exception:
            errors += 1
    return {"first_seconds": first_seconds, "keys": len(keys), "errors": errors}


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
