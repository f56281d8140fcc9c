"""``python -m aio_assume_role_lib``: the ``aio-assume-role`` command line."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
