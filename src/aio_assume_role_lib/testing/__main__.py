"""``python -m aio_assume_role_lib.testing serve``: see ``_serve``."""

import sys

from ._serve import main

if __name__ == "__main__":
    sys.exit(main())
