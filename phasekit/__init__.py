"""phasekit's offline tools: everything that runs the Pulumi program in ``infra/`` without a cloud and reads
what it would do.

- ``cli``: the ``phasekit`` command line (also ``python -m phasekit``).
- ``stack_file``: reads ``Pulumi.<stack>.yaml`` files (and the tools' own YAML data) as the Pulumi CLI does.
- ``project``: the project folder and its stack files (also at a git revision), checked before any plan.
- ``plan``: runs the program under Pulumi's mock monitor; ``plan_text`` renders it summary first, and
  ``terminal`` does so in colour with ``rich`` on a terminal.
- ``cost`` with ``prices.yaml``: the monthly cost estimate from a sourced price catalog.
- ``compare``: phases side by side, and the migration runbook between two stacks.
- ``change_risk`` with ``replacement_rules.yaml``: what a stack-file change replaces or destroys.
- ``guardrails``: runs the CrossGuard rules in ``policy/`` on the offline plan.
- ``diagram``: topology diagrams (Mermaid, Graphviz) derived from the plan.

Imports run one way: ``phasekit`` → ``infra`` → ``components``.
"""
