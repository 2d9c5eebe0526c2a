"""``python -m infra`` is the plan CLI; under the Pulumi engine (``main: infra/``) it is the program."""

import sys

from pulumi.runtime.settings import get_monitor

if get_monitor() is not None:
    # The engine configured the runtime before running us: this is `pulumi preview/up`.
    from infra.program import main as run_program

    run_program()
else:
    from infra.cli import main as run_cli

    sys.exit(run_cli())
