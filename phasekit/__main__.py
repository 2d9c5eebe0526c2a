"""``python -m phasekit``: the same command line as the ``phasekit`` console script."""

import sys

from phasekit.cli import main

sys.exit(main())
