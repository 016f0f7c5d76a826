import sys

from pgstream.cli import main

sys.exit(main())
