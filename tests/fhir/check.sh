#!/usr/bin/env bash
# Validates the FHIR R4 Encounters bedside builds (signaling/src/webhooks/fhir.rs) against the
# FHIR models of the Python package fhir.resources (its R4B models: R4B left Encounter as R4
# has it), installed from PyPI if missing. The Rust test `samples_for_the_fhir_validator`
# writes the samples; validate.py parses each and also checks that a broken one is refused,
# so the check itself can fail. Needs cargo's test build and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."

FHIR_RESOURCES_VERSION=8.3.0
if ! python3 -c 'import fhir.resources.R4B.encounter' 2>/dev/null; then
  echo "installing fhir.resources $FHIR_RESOURCES_VERSION"
  python3 -m pip install --quiet "fhir.resources==$FHIR_RESOURCES_VERSION" >/dev/null 2>&1 \
    || python3 -m pip install --quiet --break-system-packages \
      "fhir.resources==$FHIR_RESOURCES_VERSION" >/dev/null
fi

SAMPLES=$(mktemp -d)
trap 'rm -rf "$SAMPLES"' EXIT
BEDSIDE_FHIR_SAMPLES="$SAMPLES" cargo test -p bedside --locked --lib --quiet \
  webhooks::fhir::tests::samples_for_the_fhir_validator >/dev/null
export PYTHONDONTWRITEBYTECODE=1
exec python3 tests/fhir/validate.py "$SAMPLES"
