"""Parses every encounter-*.json in the directory given with fhir.resources' R4B Encounter
model (the R4 Encounter), checks what bedside promises of it, and checks that the validator
refuses a broken Encounter. Prints one line per file; exits 1 on any failure."""

import copy
import json
import pathlib
import sys

from fhir.resources.R4B.encounter import Encounter


def check(path: pathlib.Path) -> dict:
    data = json.loads(path.read_text())
    enc = Encounter.model_validate(data)  # raises on anything R4 does not allow
    assert enc.class_fhir.code == "VR", "class is v3-ActCode VR"
    assert enc.status in ("finished", "in-progress", "arrived"), enc.status
    text = path.read_text()
    for forbidden in ("name", "reason", "token", "join"):
        assert f'"{forbidden}"' not in text, f"{forbidden} in {path.name}"
    return data


def main() -> int:
    files = sorted(pathlib.Path(sys.argv[1]).glob("encounter-*.json"))
    if len(files) < 3:
        print(f"expected 3 sample Encounters, found {len(files)}")
        return 1
    failed = 0
    sample = None
    for f in files:
        try:
            sample = check(f)
            print(f"ok: {f.name} is a valid R4 Encounter")
        except Exception as e:  # noqa: BLE001 - report every failure, then exit 1
            failed += 1
            print(f"FAILED: {f.name}: {e}")
    # The validator refuses what R4 does not allow: R5's list-valued class, a period that is
    # not a dateTime, an element R4's Encounter does not have.
    for broken in ("class", "period", "element"):
        bad = copy.deepcopy(sample)
        if broken == "class":
            bad["class"] = [bad["class"]]
        elif broken == "period":
            bad["period"]["start"] = "yesterday"
        else:
            bad["virtualService"] = [{"addressUrl": "x"}]
        try:
            Encounter.model_validate(bad)
            failed += 1
            print(f"FAILED: an Encounter with a broken {broken} was accepted")
        except Exception:  # noqa: BLE001
            print(f"ok: an Encounter with a broken {broken} is refused")
    print(f"{len(files) + 3 - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
