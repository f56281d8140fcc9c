"""``python -m aio_assume_role_lib.testing serve``: a loopback STS in the foreground.

For trying a service by hand without an AWS account: it starts :class:`LoopbackSTS`,
prints the shell lines that point a shell at it (``unset`` the variables that would take
precedence, ``export`` the endpoint, the root key and the region), and serves until
Ctrl-C or SIGTERM. The lines go to stdout (so ``serve > sts.env &`` then
``. ./sts.env`` works); everything else goes to stderr.

The root key it prints is only good for this server, which listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from .._environ import CREDENTIAL_VARIABLES
from ._server import LoopbackSTS

__all__ = ["main", "make_server", "shell_lines"]

PROG = "python -m aio_assume_role_lib.testing"

# Besides every credential variable it does not export, the shell lines unset the
# endpoint of every service (AWS_ENDPOINT_URL_STS, exported, is the only one wanted).
_ALSO_UNSET = ("AWS_ENDPOINT_URL",)


def _seconds(*, positive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            rule = "a positive" if positive else "a non-negative"
            # argparse puts "argument --lifetime: " before the message.
            raise argparse.ArgumentTypeError(f"must be {rule} number of seconds, not {text!r}")
        return value

    return parse


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..65535, not {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The loopback STS endpoint.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve STS on 127.0.0.1 in the foreground and print the shell lines to use it",
        description=(
            "Serve STS on 127.0.0.1 until Ctrl-C or SIGTERM. Prints 'unset' and 'export' "
            "lines for a shell on stdout."
        ),
    )
    serve.add_argument("--port", type=_port, default=0, help="port to bind (default: a free one)")
    serve.add_argument(
        "--lifetime",
        type=_seconds(positive=True),
        default=None,
        metavar="S",
        help="lifetime of issued credentials in seconds (default: DurationSeconds, 1 hour)",
    )
    serve.add_argument(
        "--latency",
        type=_seconds(positive=False),
        default=0.0,
        metavar="S",
        help="seconds every request waits before it is answered (default: 0)",
    )
    return parser


def shell_lines(server: LoopbackSTS) -> list[str]:
    """The ``unset`` and ``export`` lines that point a POSIX shell at ``server``.

    ``unset`` removes every variable through which an SDK could pick other credentials
    than the root key exported, or spoil it: a stale ``AWS_SECURITY_TOKEN`` (botocore
    reads it before ``AWS_SESSION_TOKEN``) would be paired with the root key, a stale
    ``AWS_CREDENTIAL_EXPIRATION`` would make botocore call it expired, ``AWS_PROFILE``
    or a web identity would win over it in some SDKs.
    """
    exported = server.environ()
    unset = [name for name in (*CREDENTIAL_VARIABLES, *_ALSO_UNSET) if name not in exported]
    lines = ["unset " + " ".join(unset)]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in exported.items()]
    return lines


def make_server(argv: Sequence[str] | None = None) -> LoopbackSTS:
    """The (not yet started) server the command line asks for; exits 2 on bad usage."""
    args = _parser().parse_args(argv)
    return LoopbackSTS(credential_lifetime=args.lifetime, latency=args.latency, port=args.port)


def main(argv: Sequence[str] | None = None) -> int:
    server = make_server(argv)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    try:
        server.start()
    except OSError as error:
        print(f"{PROG} serve: cannot listen on 127.0.0.1:{server.port}: {error}", file=sys.stderr)
        return 1
    try:
        print("\n".join(shell_lines(server)), flush=True)
        print(
            f"# LoopbackSTS serving on {server.endpoint_url}; Ctrl-C or SIGTERM stops it",
            file=sys.stderr,
            flush=True,
        )
        # A timeout, so that the signal handler runs promptly on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    print(f"# LoopbackSTS stopped ({len(server.calls)} requests served)", file=sys.stderr)
    return 0
