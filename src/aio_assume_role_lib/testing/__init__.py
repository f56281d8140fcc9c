"""A loopback STS endpoint for tests: :class:`LoopbackSTS`.

``LoopbackSTS`` serves the two STS actions this library uses, ``AssumeRole`` and
``GetCallerIdentity``, on ``http://127.0.0.1:<free port>``, speaking the real AWS query
protocol (form-encoded requests, XML responses in the STS namespace), so unmodified
botocore / aiobotocore / aioboto3 clients talk to it. Point a client at it with
``endpoint_url=sts.endpoint_url`` and sign with :attr:`LoopbackSTS.root_credentials`::

    from aiobotocore.session import AioSession
    from aio_assume_role_lib.testing import LoopbackSTS

    with LoopbackSTS(credential_lifetime=6.0) as sts:
        key, secret = sts.root_credentials
        session = AioSession()
        async with session.create_client(
            "sts",
            region_name="us-east-1",
            endpoint_url=sts.endpoint_url,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        ) as client:
            response = await client.assume_role(
                RoleArn="arn:aws:iam::123456789012:role/Reader", RoleSessionName="test"
            )
        assert sts.assume_role_count == 1

For subprocesses (or ``monkeypatch.setenv``), :meth:`LoopbackSTS.environ` gives the
environment variables that route the default credential chain and STS endpoint to it.

What it does like real STS:

- Every request must carry a SigV4 ``Authorization`` header made with a key it knows (the
  root key, or a key pair it issued); the signature is verified for real. Unknown keys,
  bad signatures, missing or wrong session tokens and **expired credentials**
  (``ExpiredToken``) are rejected with the real error codes and HTTP statuses.
- ``AssumeRole`` checks its parameters the way STS does (role ARN shape, session name,
  ``DurationSeconds`` 900..43200, external id, MFA serial and code, at most 10 policy ARNs
  and 50 tags, role chaining limited to one hour) and answers ``ValidationError`` or
  ``AccessDenied`` in the real wording style.
- Issued credentials work for further calls (role chaining), and ``GetCallerIdentity``
  shows the identity that signed.

What it does for tests:

- :attr:`~LoopbackSTS.credential_lifetime` shortens (or lengthens) the lifetime of the
  credentials it issues, e.g. to 6 seconds, whatever ``DurationSeconds`` says.
- :attr:`~LoopbackSTS.latency` delays every response (the server stays concurrent).
- :meth:`~LoopbackSTS.fail_next` makes the next ``AssumeRole`` calls fail: throttling,
  a 5xx, ``AccessDenied``, a dropped connection, a hang, a malformed body, or a response
  that trickles in over ~30 s.
- :attr:`~LoopbackSTS.calls` records every request (no secrets in it).
- :func:`time_travel` moves a session's credentials into the advisory or blocking window,
  or past their expiry, without waiting, to test what a service does there.

It does not: enforce trust or IAM policies (any known identity may assume any role),
check an MFA code's value (any 6 digits pass), support presigned (query-string) SigV4,
or limit the role's ``MaxSessionDuration`` below 12 hours.

The server runs in its own daemon thread with its own asyncio event loop, so it serves
code under test on asyncio, on trio, on several event loops in turn and in subprocesses
alike. Nothing in this module logs or shows a secret access key or a session token.
"""

from __future__ import annotations

from ._faults import FAULTS, Fault
from ._server import LoopbackSTS, STSCall
from ._time_travel import Window, time_travel

__all__ = ["FAULTS", "Fault", "LoopbackSTS", "STSCall", "Window", "time_travel"]
