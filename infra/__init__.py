"""The Pulumi program (``Pulumi.yaml``: ``main: infra/``): read the stack's config, pick the phase, build it.

- ``program``: the entry point under the engine; ``phase1``/``phase2``/``phase3`` build each topology, and
  ``edge`` the Cloudflare edge every phase shares.
- ``config``: the one frozen config model tree, discriminated on ``phasekit:phase``; ``domain`` its value
  types; ``config_messages``/``config_keys`` turn validation errors into one-line messages; ``errors`` holds
  ``ConfigError``.
- ``runtime_config``/``stack_secrets``: the config and secrets as the engine hands them over.
- ``app_spec``, ``naming``: the app block as the components take it, and the few physical names.

Only this package reads config; ``components/`` receives typed args. The offline tools live in ``phasekit/``.
"""
