"""phasekit's guardrails: one set of rules (``policy.rules``), run two ways.

- ``phasekit plan`` evaluates them offline on the mock preview (``phasekit.guardrails``);
- ``pulumi preview --policy-pack policy`` runs them as a CrossGuard policy pack (``policy/__main__.py``)
  against what the engine really sends, before anything is created.

Nothing here imports the rest of phasekit: the Pulumi CLI runs the pack from this directory alone, in
its own virtualenv (``PulumiPolicy.yaml``, ``requirements.txt``).
"""
