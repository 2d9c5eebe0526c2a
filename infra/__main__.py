"""What the Pulumi engine runs for ``main: infra/``: the program. The offline tools are ``python -m phasekit``."""

import sys

from pulumi.runtime.settings import get_monitor

if get_monitor() is None:
    # Run by hand rather than by `pulumi preview/up`: there is no engine to send resources to.
    sys.exit("infra/ is the Pulumi program: run it with `pulumi preview`, or plan it offline with "
             "`python -m phasekit plan --stack <stack>`")

from infra.program import main as run_program  # noqa: E402  (only under the engine)

run_program()
