"""The loopback STS endpoint, run in a child process and driven from the benchmark.

``aio_assume_role_lib.testing.LoopbackSTS`` serves from a thread of the process that
starts it. In a benchmark that thread would share the interpreter lock with the code
being measured, so the server's own work (SigV4 checks, XML) would show up as client
latency and event-loop lag. Real STS is another machine; here it is another process,
and :class:`RemoteSTS` forwards the few controls the benchmark needs over a pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any


@dataclass(frozen=True)
class AssumeRoleCall:
    time: float
    """When the request arrived (server's ``time.time()``)."""
    outcome: str
    """``"ok"``, an error code, or the name of the fault applied."""
    issued_access_key_id: str | None
    """The access key id of the credentials it issued (an identifier, not a secret)."""
    expiration: float | None
    """When those credentials expire (epoch seconds): STS rejects them from then on."""


def _serve(conn: Connection, latency: float) -> None:
    """Child process: run a LoopbackSTS and answer commands until told to stop."""
    from aio_assume_role_lib.testing import LoopbackSTS

    sts = LoopbackSTS(latency=latency)
    sts.start()
    archived: list[Any] = []  # calls recorded before an outage ended (reset() drops them)
    lock = threading.Lock()
    try:
        conn.send(("ready", sts.environ()))
        while True:
            try:
                command, args = conn.recv()
            except EOFError:  # the benchmark died: do not outlive it
                return
            try:
                if command == "stop":
                    conn.send(("ok", None))
                    return
                if command == "set":
                    setattr(sts, args[0], args[1])
                    result: Any = None
                elif command == "fail_next":
                    sts.fail_next(
                        args[0], args[1], action=args[2] if len(args) > 2 else "AssumeRole"
                    )
                    result = None
                elif command == "source_environ":
                    result = (sts.web_identity_environ(args[0]), sts.container_environ())
                elif command == "sso_environ":  # writes the profile and the token cache
                    result = sts.write_sso_profile(args[0], args[1])
                elif command == "instance_metadata_environ":
                    result = sts.instance_metadata_environ()
                elif command == "calls_of":
                    with lock:
                        every = archived + sts.calls
                    result = [
                        AssumeRoleCall(
                            call.time, call.outcome, call.issued_access_key_id, call.expiration
                        )
                        for call in every
                        if call.action == args[0]
                        and (args[1] is None or call.params.get("RoleArn") == args[1])
                        and (len(args) < 3 or call.params.get("path") == args[2])
                    ]
                elif command == "pending_faults":
                    result = len(sts.pending_faults)
                elif command == "clear_faults":
                    # LoopbackSTS can clear queued faults only together with its records,
                    # so keep the records first.
                    with lock:
                        archived.extend(sts.calls)
                        sts.reset()
                    result = None
                elif command == "assume_role_calls":
                    with lock:
                        every = archived + sts.calls
                    result = [
                        AssumeRoleCall(
                            call.time, call.outcome, call.issued_access_key_id, call.expiration
                        )
                        for call in every
                        if call.action == "AssumeRole" and call.params.get("RoleArn") == args[0]
                    ]
                elif command == "outcomes":
                    with lock:
                        every = archived + sts.calls
                    result = dict(Counter(call.outcome for call in every if call.action == args[0]))
                else:
                    raise ValueError(f"unknown command {command!r}")
                conn.send(("ok", result))
            except Exception as exc:
                conn.send(("error", repr(exc)))
    finally:
        sts.stop()


class RemoteSTS:
    """A LoopbackSTS in a child process (see the module docstring)."""

    def __init__(self, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child_conn, latency), name="loopback-sts", daemon=True
        )
        self._process.start()
        child_conn.close()
        self._lock = threading.Lock()
        if not self._conn.poll(60):
            self._process.kill()
            raise RuntimeError("the loopback STS process did not start within 60 s")
        status, environ = self._conn.recv()
        if status != "ready":
            raise RuntimeError(f"the loopback STS process failed to start: {environ}")
        self._environ: dict[str, str] = environ

    def _call(self, command: str, *args: Any) -> Any:
        with self._lock:
            self._conn.send((command, args))
            if not self._conn.poll(30):
                raise RuntimeError(f"the loopback STS process did not answer {command!r}")
            status, result = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"loopback STS {command!r} failed: {result}")
        return result

    def environ(self) -> dict[str, str]:
        """``AWS_ENDPOINT_URL_STS``, the root key and the region (see LoopbackSTS.environ)."""
        return dict(self._environ)

    def set_latency(self, seconds: float) -> None:
        self._call("set", "latency", seconds)

    def set_credential_lifetime(self, seconds: float | None) -> None:
        self._call("set", "credential_lifetime", seconds)

    def fail_next(self, fault: str, count: int, action: str = "AssumeRole") -> None:
        self._call("fail_next", fault, count, action)

    def source_environ(self, token_file: str) -> tuple[dict[str, str], dict[str, str]]:
        """The environments of a web identity parent and of a container parent."""
        environs: tuple[dict[str, str], dict[str, str]] = self._call("source_environ", token_file)
        return environs

    def sso_environ(self, config_file: str, token_cache_dir: str) -> dict[str, str]:
        """The environment of an SSO parent (``LoopbackSTS.write_sso_profile``: it writes
        the profile into ``config_file`` and the login's token into ``token_cache_dir``)."""
        environ: dict[str, str] = self._call("sso_environ", config_file, token_cache_dir)
        return environ

    def instance_metadata_environ(self) -> dict[str, str]:
        """The environment of an EC2 parent on the server's instance metadata."""
        environ: dict[str, str] = self._call("instance_metadata_environ")
        return environ

    def calls_of(
        self, action: str, role_arn: str | None = None, path: str | None = None
    ) -> list[AssumeRoleCall]:
        """Every request of ``action`` (for ``role_arn``, and to ``path`` for instance
        metadata, if given) so far, oldest first."""
        args = (action, role_arn) if path is None else (action, role_arn, path)
        calls: list[AssumeRoleCall] = self._call("calls_of", *args)
        return calls

    def pending_faults(self) -> int:
        """How many queued faults no AssumeRole request has consumed yet."""
        count: int = self._call("pending_faults")
        return count

    def clear_faults(self) -> None:
        self._call("clear_faults")

    def assume_role_calls(self, role_arn: str) -> list[AssumeRoleCall]:
        """Every AssumeRole request for ``role_arn`` so far, oldest first."""
        calls: list[AssumeRoleCall] = self._call("assume_role_calls", role_arn)
        return calls

    def outcomes(self, action: str) -> dict[str, int]:
        counts: dict[str, int] = self._call("outcomes", action)
        return counts

    def stop(self) -> None:
        if not self._process.is_alive():
            return
        with contextlib.suppress(Exception):  # it may be gone already
            self._call("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._conn.close()
