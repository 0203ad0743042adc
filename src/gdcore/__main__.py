"""``python -m gdcore``: the gdcore command line."""

import sys

from gdcore.cli import main

sys.exit(main())
