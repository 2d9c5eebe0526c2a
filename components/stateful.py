"""Resource options for children that hold data (volumes, buckets, databases, caches).

Pulumi's mock monitor does not apply resource options, so the decision lives in this small pure function
that the tests call directly; the recording harness additionally captures what the engine was asked.
"""

from __future__ import annotations

import pulumi


def stateful_options(parent: pulumi.Resource, protect: bool, **extra: object) -> pulumi.ResourceOptions:
    """``protect`` blocks a delete or replace in ``pulumi up``; ``retain_on_delete`` keeps the cloud
    resource even if someone unprotects and destroys, so a data store is only ever removed by hand.

    Both are set on the stateful child only: they inherit downwards, and setting them on the component
    would also freeze its stateless siblings.
    """
    return pulumi.ResourceOptions(parent=parent, protect=protect, retain_on_delete=protect, **extra)
