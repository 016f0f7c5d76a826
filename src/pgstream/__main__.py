"""``python -m pgstream``: the command line (see :mod:`pgstream.cli`)."""
import sys

from pgstream.cli import main

sys.exit(main())
