"""`python -m callqueue.cli`: the command, as the `callqueue` script runs it."""

import sys

from callqueue.cli import main

if __name__ == "__main__":
    sys.exit(main())
