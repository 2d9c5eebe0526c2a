"""Validate what a component asked pulumi-kubernetes to create against the real Kubernetes API schemas.

``manifests(recording)`` turns each recorded Kubernetes resource back into the manifest pulumi-kubernetes
would send (its recorded inputs are exactly that object: apiVersion, kind, metadata, spec, stringData,
type...). ``validate(manifest, version)`` checks it with kubernetes-validate, which ships the OpenAPI-derived
JSON schemas of several Kubernetes releases offline, in strict mode: an unknown or misspelt field is an
error, as are wrong types and values outside an enum.

What a schema cannot prove: the API server's own validation beyond the schema (name formats, cross-field
rules such as maxSurge and maxUnavailable both 0, immutable fields on update), admission (Pod Security
Admission, webhooks), or that the cluster has the feature gates a field needs. A real cluster does.
"""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import all_versions

from components.testing import Recording

SUPPORTED_VERSIONS = tuple(dict.fromkeys(version.rsplit(".", 1)[0] for version in all_versions()))
"""Kubernetes minor versions whose schemas the installed kubernetes-validate ships (1.25 ... 1.37 for 1.37.0)."""


def manifests(recording: Recording) -> list[dict[str, Any]]:
    """Every recorded Kubernetes object (components such as ``kubernetes:yaml:ConfigFile`` and providers are
    not API objects and are skipped), in registration order.

    ``metadata.name`` is filled with the logical name where pulumi-kubernetes would auto-name the object
    (it appends a random suffix at deploy time). Numbers arrive as floats over Pulumi's wire format; the
    integral ones become ints again, as the provider sends them."""
    found = []
    for resource in recording.resources:
        if not resource.type.startswith("kubernetes:") or not resource.custom:
            continue
        manifest = _integral_numbers(copy.deepcopy(resource.inputs))
        metadata = manifest.setdefault("metadata", {})
        if not metadata.get("name") and not metadata.get("generateName"):
            metadata["name"] = resource.name
        found.append(manifest)
    return found


def validate(manifest: dict[str, Any], kubernetes_version: str) -> list[str]:
    """Errors of ``manifest`` against the schemas of ``kubernetes_version`` (e.g. "1.34"), strict mode.

    kubernetes-validate stops at the first violation, so the list holds at most one error; an object whose
    kind or apiVersion that release does not know is an error too, never silently accepted."""
    where = f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"
    try:
        kubernetes_validate.validate(manifest, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path) or "(root)"
        return [f"{where}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where}: {error.message}"]
    return []


def _integral_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_numbers(item) for item in value]
    return value
