"""Resource options for children that hold data (volumes, buckets, databases, caches), and the unique names
of the final snapshots their deletion leaves.

Pulumi's mock monitor does not apply resource options, so the decision lives in this small pure function
that the tests call directly; the recording harness additionally captures what the engine was asked.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_random as random

FINAL_SNAPSHOT_SUFFIX_BYTES = 4
"""Eight hex characters: a collision between two deletions of the same data store is one in four billion."""


def stateful_options(parent: pulumi.Resource, protect: bool, **extra: object) -> pulumi.ResourceOptions:
    """``protect`` blocks a delete or replace in ``pulumi up``; ``retain_on_delete`` keeps the cloud
    resource even if someone unprotects and destroys, so a data store is only ever removed by hand.

    Both are set on the stateful child only: they inherit downwards, and setting them on the component
    would also freeze its stateless siblings.
    """
    return pulumi.ResourceOptions(parent=parent, protect=protect, retain_on_delete=protect, **extra)


def parameter_group_options(parent: pulumi.Resource) -> pulumi.ResourceOptions:
    """A data store's parameter group is retained on delete, so a family change (a PostgreSQL major upgrade, a
    Valkey major upgrade, Redis to Valkey) completes: the new family replaces the group (a new auto-named one is
    created first and the data store is pointed at it), but with ``apply_immediately`` off AWS keeps the old group
    attached until the maintenance window, and deleting it would fail (RDS: InvalidDBParameterGroupState) after
    the provider's 3 minutes of retries, failing the update. Retained, the old group is only dropped from the
    state; delete it by hand after the window (parameter groups are free; a destroy leaves the current one too).
    Pulumi deletes an old resource by the options its state holds (pulumi/pulumi#13428), so a group recorded
    before it was retained is protected only after one ``pulumi up`` without a family change."""
    return pulumi.ResourceOptions(parent=parent, retain_on_delete=True)


def final_snapshot_suffix(name: str, keepers: Mapping[str, pulumi.Input[str]],
                          parent: pulumi.Resource) -> random.RandomId:
    """The random suffix of a data store's final snapshot, renewed whenever ``keepers`` change.

    A fixed name (``<id>-final``) collides with the snapshot an earlier deletion left: RDS refuses an existing
    snapshot name (DBSnapshotAlreadyExists) and ElastiCache's DeleteReplicationGroup fails with
    SnapshotAlreadyExistsFault, so a destroyed and re-created stack could not be destroyed again. The suffix is
    created with the data store (at program time, never inside an apply); ``keepers`` are the inputs whose change
    replaces the data store under the same physical id, so each replaced one leaves its own snapshot.

    Changing the keepers of an existing suffix (a new keeper added in a later release, or a keeper's value) replaces
    only this RandomId: the data store then sees a new final snapshot name, which both providers change in place
    (it is read only when the store is deleted)."""
    return random.RandomId(f"{name}-final-snapshot", byte_length=FINAL_SNAPSHOT_SUFFIX_BYTES, keepers=dict(keepers),
                           opts=pulumi.ResourceOptions(parent=parent))


def final_snapshot_name(identifier: str, suffix: str) -> str:
    """``<identifier>-final-<8 hex>``: RDS identifiers here are at most 53 characters (68 in all, within RDS's 255);
    ElastiCache group ids at most 40 (55 in all). Lowercase hex keeps both services' rules (letters, digits and
    single hyphens, not ending with a hyphen)."""
    return f"{identifier}-final-{suffix}"
