"""An ETL job that fans out over many AWS accounts, a few at a time, with bounded memory.

For every account it assumes the same role, leases an STS client for it from a
``ClientPool`` and does its work (here a GetCallerIdentity call stands in for it). An
organisation-wide scan made naively keeps one client per account open for the whole
run, tens of MB each; the pool keeps at most ``max_clients`` open and closes the least
recently used idle one to make room, and an ``anyio.CapacityLimiter`` bounds how many
accounts are worked on at once. It runs on asyncio or trio (through anyio).

Run it against real accounts (the parent's credentials come from the usual places)::

    ACCOUNT_IDS=111111111111,222222222222 ROLE_NAME=EtlReader python etl_fanout.py

or against the library's loopback STS, with 500 made-up accounts::

    python etl_fanout.py --loopback 500

Its test, ``tests/test_examples.py``, runs it over 160 roles against the loopback STS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from aiobotocore.session import AioSession

from aio_assume_role_lib import ClientPool, assume_role, get_role_arn

ROLE_SESSION_NAME = "etl-fanout"


@dataclass
class FanOutReport:
    done: dict[str, str] = field(default_factory=dict)  # account id -> the ARN it ran as
    failed: dict[str, str] = field(default_factory=dict)  # account id -> the error
    peak_open_clients: int = 0
    clients_opened: int = 0


# --8<-- [start:fanout]
async def fan_out(
    parent: AioSession,
    account_ids: Sequence[str],
    role_name: str,
    *,
    max_clients: int = 32,
    concurrency: int = 32,
    progress: Callable[[str], Any] = print,
) -> FanOutReport:
    """Work on every account as ``role_name``, ``concurrency`` accounts at a time."""
    report = FanOutReport()
    limiter = anyio.CapacityLimiter(concurrency)
    step = max(1, len(account_ids) // 10)  # report progress every 10%

    async def one_account(pool: ClientPool, account_id: str) -> None:
        async with limiter:
            try:
                role = await assume_role(
                    parent, get_role_arn(account_id, role_name), RoleSessionName=ROLE_SESSION_NAME
                )
                async with pool.client(role, "sts") as sts:
                    report.peak_open_clients = max(report.peak_open_clients, pool.open_clients)
                    identity = await sts.get_caller_identity()  # the account's real work here
                report.done[account_id] = identity["Arn"]
            except Exception as exc:  # one account's failure must not stop the others
                report.failed[account_id] = f"{type(exc).__name__}: {exc}"
            finished = len(report.done) + len(report.failed)
            if finished % step == 0 or finished == len(account_ids):
                progress(
                    f"{finished}/{len(account_ids)} accounts, {len(report.failed)} failed, "
                    f"{pool.open_clients} clients open"
                )

    # At most max_clients open at once; every one of them closed when the job ends.
    async with ClientPool(max_clients=max_clients) as pool:
        async with anyio.create_task_group() as tasks:
            for account_id in account_ids:
                tasks.start_soon(one_account, pool, account_id)
        report.clients_opened = pool.clients_opened
    return report


# --8<-- [end:fanout]


async def main(argv: list[str]) -> int:
    if argv[:1] == ["--loopback"]:
        from aio_assume_role_lib.testing import LoopbackSTS

        count = int(argv[1]) if len(argv) > 1 else 500
        accounts = [f"{100000000000 + n:012d}" for n in range(count)]
        async with LoopbackSTS() as sts:
            os.environ.update(sts.environ())
            report = await fan_out(AioSession(), accounts, "EtlReader")
            print(f"STS saw {sts.assume_role_count} AssumeRole calls")
    else:
        accounts = [a.strip() for a in os.environ["ACCOUNT_IDS"].split(",") if a.strip()]
        report = await fan_out(AioSession(), accounts, os.environ["ROLE_NAME"])
    print(
        f"{len(report.done)} done, {len(report.failed)} failed; "
        f"{report.clients_opened} clients opened, at most {report.peak_open_clients} at once"
    )
    for account_id, error in sorted(report.failed.items()):
        print(f"  {account_id}: {error}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1:]))
