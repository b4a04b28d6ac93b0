#!/usr/bin/env python3
"""Lint or render charts/gatehouse with real Helm (the helm-python-sdk wheel, Helm v4's Go SDK).

    render.py lint [VALUES_FILE...]    lint messages, one per line; exit 1 on any error
    render.py render [VALUES_FILE...]  CRDs (crds/) then every rendered template, as one
                                       multi-document YAML stream; exit 1 when values fail the
                                       schema or a template fails to render

VALUES_FILEs merge left to right like `helm -f`. The release is `gatehouse` in namespace
`gatehouse-system` (GATEHOUSE_CHART, HELM_RELEASE, HELM_NAMESPACE override). Exit 2: usage or
the SDK is missing (`make test` installs it into .venv).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:
    import helm_python as helm
except ImportError as err:  # pragma: no cover - environment problem
    sys.stderr.write(f"helm-python-sdk is not installed ({err}); run `make test`\n")
    sys.exit(2)

ROOT = Path(__file__).resolve().parents[2]
CHART = Path(os.environ.get("GATEHOUSE_CHART", ROOT / "charts" / "gatehouse"))
RELEASE = os.environ.get("HELM_RELEASE", "gatehouse")
NAMESPACE = os.environ.get("HELM_NAMESPACE", "gatehouse-system")
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict, over: dict) -> dict:
    """Deep-merge `over` into `base` (maps merge, everything else replaces), as `helm -f` does."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def user_values(files: list[str]) -> dict | None:
    if not files:
        return None
    values: dict = {}
    for file in files:
        values = merge(values, helm.values_from_yaml(Path(file).read_text()))
    return values


def lint(files: list[str]) -> int:
    report = helm.lint(CHART, user_values(files), namespace=NAMESPACE, strict=False)
    errors = 0
    for message in report.get("messages") or []:
        severity = SEVERITY.get(message.get("severity"), "UNKNOWN")
        errors += severity == "ERROR"
        print(f"[{severity}] {message.get('path', '')}: {str(message.get('error', '')).strip()}")
    if not errors:  # `errors` repeats the ERROR messages; print it only when they are absent
        for error in report.get("errors") or []:
            errors += 1
            print(f"[ERROR] {str(error).strip()}")
    print(f"{report.get('total_charts_linted', 0)} chart(s) linted, {errors} error(s)")
    return 1 if errors else 0


def render(files: list[str]) -> int:
    values = user_values(files)
    with helm.Chart.load(CHART) as chart:
        try:
            # Like `helm install`/`helm template`, rendering validates values.schema.json first.
            manifests = chart.render(
                values, name=RELEASE, namespace=NAMESPACE, revision=1, is_install=True
            )
        except helm.HelmError as err:
            sys.stderr.write(f"render failed: {err}\n")
            return 1
        docs = []
        for crd in sorted(chart.crds, key=lambda c: c["filename"]):
            docs.append(f"# Source: {crd['filename']}\n{crd['data'].strip()}\n")
    for path in sorted(manifests):
        if not path.endswith((".yaml", ".yml")):
            continue  # NOTES.txt and helpers
        body = manifests[path].strip()
        if body:
            docs.append(f"# Source: {path}\n{body}\n")
    sys.stdout.write("---\n".join(docs))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 1 or argv[0] not in ("lint", "render"):
        sys.stderr.write(__doc__ or "")
        return 2
    return lint(argv[1:]) if argv[0] == "lint" else render(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
