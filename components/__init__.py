"""Reusable Pulumi components, one module each, and the pure helpers behind them.

Components (``phasekit:index:<Class>``): ``CloudflareEdge`` and ``BackupStore`` (every phase), ``SingleVps``
(phase 1), ``SplitVps`` (phase 2), ``AwsNetwork``, ``EksCluster``, ``RdsPostgres``, ``ElastiCacheRedis``,
``AlertTopic``, ``PublicLoadBalancer``, ``KubernetesApp`` and ``LogicalBackup`` (phase 3). Pure helpers render
what runs on a host (``compose_stack``, ``proxy_config``, ``data_host``, ``cloud_init``, ``backups``, and the app's
workers and schedules on a droplet in ``host_processes``), define the health-check contract every checker follows
(``health``), describe the app's processes and schedules and read their cron (``processes``), size databases
(``tuning``), shape tags and connection URLs, and ``testing`` is the recording mock harness for unit tests.

Components take typed args and never read ``pulumi.Config()``, the environment or the stack name.
"""
