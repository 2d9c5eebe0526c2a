"""Sizing rules for PostgreSQL and Redis, derived from the machine they run on.

Pure functions of (memory, vCPUs, connection demand), so a resize changes the settings predictably and the
tests can compare the numbers with what a real server reports through ``SHOW``. The rules follow the
usual pgtune-style guidance for an SSD-backed web workload, quoted in the seeds phasekit was designed
from: shared_buffers about 25 % of RAM, effective_cache_size about 75 %, max_connections sized to the
application's pool rather than a large default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RESERVED_DB_CONNECTIONS = 10
"""Connections kept free beyond the app's pool: the release command, the nightly dump, an admin psql."""

MIN_DB_CONNECTIONS = 20


@dataclass(frozen=True)
class Machine:
    """The CPU and memory a service is sized against."""

    vcpus: int
    memory_mib: int


def db_max_connections(workers: int, pool_size_per_worker: int) -> int:
    """Every worker's pool at once, plus room for migrations, backups and an operator."""
    return max(MIN_DB_CONNECTIONS, workers * pool_size_per_worker + RESERVED_DB_CONNECTIONS)


ROLLING_SURGE_PERCENT = 25
"""The app Deployment's ``maxSurge`` (components/kubernetes_app.py): extra pods a rollout starts before old
ones stop. Kubernetes rounds a percentage surge up."""

POSTGRES_RESERVED_SLOTS = 3 + 2
"""Slots PostgreSQL keeps from ordinary roles inside ``max_connections``: ``superuser_reserved_connections``
(default 3) plus RDS's ``rds.rds_superuser_reserved_connections`` (default 2).
https://www.postgresql.org/docs/current/runtime-config-connection.html,
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Parameters.html"""

OPERATOR_CONNECTIONS = 5
"""An admin psql, a dump, the monitoring agent: ordinary-role connections outside the app."""

CONNECTION_HEADROOM_PERCENT = 25
"""Slack above the computed demand (connections a client leaks or holds while reconnecting), so a demand
estimate that is slightly low does not refuse connections at the HPA's maximum."""


@dataclass(frozen=True)
class ConnectionDemand:
    """Every PostgreSQL connection phase 3's app can hold at once, with where each part comes from."""

    max_replicas: int
    surge_pods: int
    workers_per_pod: int
    pool_size: int
    release_job_pods: int
    process_pods: int = 0
    """Pods of the app's other processes at their most (``max_count``, else ``count``), one pool each."""

    process_surge_pods: int = 0
    """What a rollout of each process Deployment adds on top (rounded up per Deployment)."""

    schedule_pods: int = 0
    """One pod per schedule (``concurrencyPolicy: Forbid``: never two runs of one schedule), one pool each."""

    @property
    def app_connections(self) -> int:
        pods = self.max_replicas + self.surge_pods
        one_pool_pods = self.release_job_pods + self.process_pods + self.process_surge_pods + self.schedule_pods
        return pods * self.workers_per_pod * self.pool_size + one_pool_pods * self.pool_size

    @property
    def max_connections(self) -> int:
        """App demand plus the operators' share, with headroom, plus the reserved superuser slots; rounded up
        to a multiple of 10 so small config changes rarely move the (static, reboot-only) parameter."""
        demand = self.app_connections + OPERATOR_CONNECTIONS
        with_headroom = -(-demand * (100 + CONNECTION_HEADROOM_PERCENT) // 100)
        return -(-(with_headroom + POSTGRES_RESERVED_SLOTS) // 10) * 10

    def explain(self) -> str:
        """The sum, term by term; the process and schedule terms appear only when the app has them."""
        others = ""
        if self.process_pods:
            others += (f"({self.process_pods} process pods at their maximum + {self.process_surge_pods} surge) x "
                       f"pool {self.pool_size} + ")
        if self.schedule_pods:
            others += f"{self.schedule_pods} schedule pods x pool {self.pool_size} + "
        return (f"({self.max_replicas} pods at the HPA maximum + {self.surge_pods} surge) x {self.workers_per_pod} "
                f"workers x pool {self.pool_size} + {self.release_job_pods} release Job x pool {self.pool_size} + "
                f"{others}{OPERATOR_CONNECTIONS} operator, +{CONNECTION_HEADROOM_PERCENT}% headroom, + "
                f"{POSTGRES_RESERVED_SLOTS} reserved superuser slots = {self.max_connections}")


def rollout_surge_pods(replicas: int, surge_percent: int = ROLLING_SURGE_PERCENT) -> int:
    """Pods a RollingUpdate adds on top of ``replicas`` (a percentage surge rounds up)."""
    return -(-replicas * surge_percent // 100)


def kubernetes_connection_demand(max_replicas: int, workers_per_pod: int, pool_size: int,
                                 release_job: bool, process_replicas: Sequence[int] = (),
                                 schedules: int = 0) -> ConnectionDemand:
    """Phase 3's demand: the HPA may run ``max_replicas`` pods, a rollout at that size surges on top, and the
    release Job (one pod, one pool) runs before the new pods start while the old ones still serve. Each process
    Deployment (``process_replicas``: each one's most replicas) may run that many pods plus its own surge, one
    pool per pod (a worker process holds one pool, not one per web worker); each schedule runs one pod at a time.
    Every Deployment rolls at once in one ``pulumi up``, so all the surges count together."""
    return ConnectionDemand(max_replicas=max_replicas, surge_pods=rollout_surge_pods(max_replicas),
                            workers_per_pod=workers_per_pod, pool_size=pool_size,
                            release_job_pods=1 if release_job else 0, process_pods=sum(process_replicas),
                            process_surge_pods=sum(rollout_surge_pods(replicas) for replicas in process_replicas),
                            schedule_pods=schedules)


NodeRoom = tuple[int, int, int]
"""(CPU millicores, memory MiB, pod slots) a node has for the app's pods."""

PodShape = tuple[int, int]
"""(CPU millicores, memory MiB) one pod requests."""


def pods_left_over(nodes: Sequence[NodeRoom], pods: Sequence[PodShape]) -> int:
    """How many of ``pods`` find no room when placed first-fit, largest first (by memory, then CPU), on
    ``nodes``.

    Pods of one shape (the web pods alone) place exactly as many as ``aws_choices.pods_that_fit`` counts. Pods
    of mixed shapes are bin packing: first-fit decreasing is a heuristic that may leave a pod over where a
    cleverer placement would not (so it can refuse a workload that would just fit), and the scheduler, which
    spreads pods rather than packs them, may strand room that this placement uses. So 0 means "a placement
    exists", not "the scheduler will find it"; the Cluster Autoscaler adds nodes up to ``maxSize`` when a pod is
    left Pending."""
    room = [list(node) for node in nodes]
    left_over = 0
    for cpu, memory in sorted(pods, key=lambda shape: (shape[1], shape[0]), reverse=True):
        for node in room:
            if node[0] >= cpu and node[1] >= memory and node[2] >= 1:
                node[0] -= cpu
                node[1] -= memory
                node[2] -= 1
                break
        else:
            left_over += 1
    return left_over


def postgres_settings(machine: Machine, max_connections: int) -> dict[str, str]:
    """postgresql.conf settings for a server sharing ``machine`` with a web app.

    Values are strings exactly as PostgreSQL's ``SHOW`` prints them back (memory in MB/kB units PostgreSQL
    normalises to), so a test can compare them one to one.
    """
    memory_mb = machine.memory_mib
    shared_buffers_mb = postgres_shared_buffers_mib(machine)
    effective_cache_mb = memory_mb * 3 // 4
    maintenance_work_mem_mb = min(memory_mb // 16, 2048)
    # pgtune's rule: what shared_buffers leaves, split over every connection running ~3 sort/hash nodes.
    work_mem_mb = max(4, (memory_mb - shared_buffers_mb) // (max_connections * 3))
    parallel_per_gather = machine.vcpus // 2
    return {
        "listen_addresses": "*",
        "max_connections": str(max_connections),
        "shared_buffers": _memory(shared_buffers_mb * 1024),
        "effective_cache_size": _memory(effective_cache_mb * 1024),
        "maintenance_work_mem": _memory(maintenance_work_mem_mb * 1024),
        "work_mem": _memory(work_mem_mb * 1024),
        "wal_buffers": "16MB",
        "checkpoint_completion_target": "0.9",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "max_worker_processes": str(max(2, machine.vcpus)),
        "max_parallel_workers": str(max(2, machine.vcpus)),
        "max_parallel_workers_per_gather": str(parallel_per_gather),
        "password_encryption": "scram-sha-256",
        "shared_preload_libraries": "pg_stat_statements",
        # Slow-query threshold matches the seeds' P95 warning line (500 ms).
        "log_min_duration_statement": "500ms",
        "log_timezone": "UTC",
        "timezone": "UTC",
    }


def postgres_shared_buffers_mib(machine: Machine) -> int:
    """A quarter of RAM (pgtune's rule), held by PostgreSQL from its start."""
    return machine.memory_mib // 4


def redis_maxmemory_mib(machine: Machine) -> int:
    """An eighth of RAM (256 MiB on a 2 GiB droplet, as the seeds size it), never below 64 MiB."""
    return max(64, machine.memory_mib // 8)


def _memory(kb: int) -> str:
    """Format kB the way PostgreSQL's SHOW does: the largest unit that divides evenly."""
    for unit, size in (("GB", 1024 * 1024), ("MB", 1024)):
        if kb % size == 0:
            return f"{kb // size}{unit}"
    return f"{kb}kB"
