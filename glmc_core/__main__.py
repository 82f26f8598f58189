"""``python -m glmc_core`` is the ``glmc`` command."""

import sys

from .cli import main

sys.exit(main())
