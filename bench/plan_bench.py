"""Whole-process wall time and peak RSS of ``phasekit plan`` beside the import floor.

The floor is a process that only imports the provider SDKs the plan needs; the goal is a plan at most
1.5x the floor in both time and memory. Prints figures; asserts nothing.

    .venv/bin/python bench/plan_bench.py [--runs 5] [--stack phase1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR_IMPORTS = {
    "phase1": "import pulumi, pulumi_cloudflare, pulumi_command, pulumi_digitalocean, pulumi_random, pulumi_tls",
    "phase2": "import pulumi, pulumi_cloudflare, pulumi_command, pulumi_digitalocean, pulumi_random, pulumi_tls",
    # The SDKs load a service's module on first use of one of its classes: use one from every service
    # phase 3 creates resources of. pulumi_digitalocean is there because the config model, shared by every
    # phase, validates DigitalOcean regions and sizes against its enums.
    "phase3": "import pulumi, pulumi_aws as aws, pulumi_cloudflare, pulumi_digitalocean, pulumi_kubernetes as k8s, "
              "pulumi_random, pulumi_tls; aws.acm.Certificate, aws.autoscaling.Attachment, "
              "aws.cloudwatch.MetricAlarm, aws.ec2.Vpc, aws.eks.Cluster, aws.elasticache.ReplicationGroup, "
              "aws.iam.Role, aws.kms.Key, aws.lb.LoadBalancer, aws.rds.Instance, aws.s3.Bucket, aws.sns.Topic, "
              "aws.ssm.get_parameter_output, aws.vpc.SecurityGroupIngressRule, k8s.Provider, "
              "k8s.apps.v1.Deployment, k8s.autoscaling.v2.HorizontalPodAutoscaler, k8s.batch.v1.Job, "
              "k8s.core.v1.Namespace, k8s.networking.v1.NetworkPolicy, k8s.policy.v1.PodDisruptionBudget, "
              "k8s.rbac.v1.ClusterRole",
}
GOAL = 1.5


def measure(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in MiB) of one run of ``command``."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss // 1024


def summarise(runs: list[tuple[float, int]]) -> tuple[float, int]:
    return statistics.median(run[0] for run in runs), max(run[1] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stack", default="phase1", choices=sorted(FLOOR_IMPORTS))
    args = parser.parse_args()

    floor_command = [sys.executable, "-c", FLOOR_IMPORTS[args.stack]]
    plan_command = [sys.executable, "-m", "phasekit", "plan", "--stack", args.stack]
    measure(plan_command)  # warm the filesystem cache and bytecode for both
    floor = summarise([measure(floor_command) for _ in range(args.runs)])
    plan = summarise([measure(plan_command) for _ in range(args.runs)])

    print(f"stack {args.stack}, {args.runs} runs each (median wall time, peak RSS)")
    print(f"  floor (imports only): {floor[0]:6.2f} s  {floor[1]:5d} MiB")
    print(f"  plan:                 {plan[0]:6.2f} s  {plan[1]:5d} MiB")
    time_ratio, memory_ratio = plan[0] / floor[0], plan[1] / floor[1]
    print(f"  ratio:                {time_ratio:6.2f} x  {memory_ratio:5.2f} x   (goal <= {GOAL} x)")
    verdict = "meets" if time_ratio <= GOAL and memory_ratio <= GOAL else "misses"
    print(f"  {verdict} the goal")


if __name__ == "__main__":
    main()
