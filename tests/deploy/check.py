"""Static checks of the deployment files under deploy/ and the port table of docs/operations.md.

Run through tests/deploy/check.sh. Prints one line per check and `N passed, M failed` last;
exits 1 when any check failed.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helmrender  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
CHART = os.path.join(DEPLOY, "helm", "bedside")
BINARIES = ["bedside", "bedside-turn", "bedside-recorder"]

passed = 0
failed = 0
skipped = 0


def check(name, fn):
    global passed, failed, skipped
    try:
        note = fn()
    except Exception as e:  # a check's failure, reported with its reason
        failed += 1
        print(f"FAIL {name}: {e}")
        return
    if note and note.startswith("skipped:"):
        skipped += 1
        print(f"skip {name} ({note[len('skipped: '):]})")
        return
    passed += 1
    print(f"ok   {name}" + (f" ({note})" if note else ""))


def rel(p):
    return os.path.relpath(p, ROOT)


def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()


# --- YAML and JSON ------------------------------------------------------------------------
def yaml_files():
    out = []
    for ext in ("yaml", "yml"):
        out += glob.glob(os.path.join(DEPLOY, "**", f"*.{ext}"), recursive=True)
    templates = os.path.join(CHART, "templates") + os.sep
    return sorted(p for p in out if not p.startswith(templates))


def parse_yaml(p):
    def fn():
        docs = [d for d in yaml.safe_load_all(read(p)) if d is not None]
        if not docs:
            raise AssertionError("no YAML document")
        return f"{len(docs)} document(s)"

    return fn


def grafana_json():
    d = json.loads(read(os.path.join(DEPLOY, "grafana", "bedside.json")))
    if not d.get("panels"):
        raise AssertionError("no panels")
    return f"{len(d['panels'])} panels"


# --- compose ------------------------------------------------------------------------------
def compose_structure():
    c = yaml.safe_load(read(os.path.join(DEPLOY, "compose.yaml")))
    s = c["services"]
    for name in BINARIES:
        if name not in s:
            raise AssertionError(f"service {name} missing")
        svc = s[name]
        if svc.get("build", {}).get("dockerfile") != f"deploy/docker/{name}.Dockerfile":
            raise AssertionError(f"{name}: build.dockerfile is not deploy/docker/{name}.Dockerfile")
        if not str(svc.get("user", "")).split(":")[0].isdigit() or str(svc["user"]).startswith("0"):
            raise AssertionError(f"{name}: user must be a numeric non-root id")
        if svc.get("read_only") is not True:
            raise AssertionError(f"{name}: read_only is not true")
        for v in svc.get("volumes", []):
            src, dst = v.split(":")[0], v.split(":")[1]
            if src.startswith(("$", "/", ".")) and not v.endswith(":ro"):
                raise AssertionError(f"{name}: bind mount {dst} is not read-only")
    ports = s["bedside"]["ports"]
    for want in ("8443:8443/tcp", "50000:50000/udp", "127.0.0.1:9090:9090/tcp"):
        if want not in ports:
            raise AssertionError(f"bedside: port {want} missing")
    if s["bedside-turn"].get("network_mode") != "host":
        raise AssertionError("bedside-turn: expected network_mode: host")
    if not any(v.endswith(":/var/lib/bedside-recorder") for v in s["bedside-recorder"]["volumes"]):
        raise AssertionError("bedside-recorder: no volume for recordings")
    for name, sec in c["secrets"].items():
        if "file" not in sec:
            raise AssertionError(f"secret {name} is not a file secret")
    return f"{len(s)} services, {len(c['secrets'])} secrets"


def compose_config():
    tool = None
    if shutil.which("docker"):
        r = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if r.returncode == 0:
            tool = ["docker", "compose"]
    if tool is None and shutil.which("docker-compose"):
        tool = ["docker-compose"]
    if tool is None:
        return "skipped: neither `docker compose` nor docker-compose installed"
    r = subprocess.run(
        tool + ["-f", os.path.join(DEPLOY, "compose.yaml"), "--profile", "recording", "config", "-q"],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(tool)} config: {r.stderr.strip()}")
    return f"{' '.join(tool)} config -q"


# --- Helm ---------------------------------------------------------------------------------
VARIANTS = {
    "defaults": {},
    "hostNetwork+DaemonSet+recorder+ServiceMonitor": {
        "bedside": {"hostNetwork": True, "publicKeysConfigMap": "scheduler-keys"},
        "turn": {"hostNetwork": True, "kind": "DaemonSet", "allowPeer": ["10.0.0.0/8"]},
        "recorder": {"enabled": True},
        "serviceMonitor": {"enabled": True},
    },
}


def values_refs_exist():
    values = yaml.safe_load(read(os.path.join(CHART, "values.yaml")))
    missing = []
    n = 0
    for t in glob.glob(os.path.join(CHART, "templates", "*")):
        for ref in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", read(t)):
            n += 1
            cur = values
            for part in ref[1:].split("."):
                if not isinstance(cur, dict) or part not in cur:
                    missing.append(f"{os.path.basename(t)}: .Values{ref}")
                    break
                cur = cur[part]
    if missing:
        raise AssertionError("not in values.yaml: " + ", ".join(sorted(set(missing))))
    return f"{n} references"


def values_commented():
    lines = read(os.path.join(CHART, "values.yaml")).splitlines()
    bad = []
    in_block = None
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if in_block is not None:
            if line.strip() == "" or indent > in_block:
                continue
            in_block = None
        m = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):(.*)$", line)
        if not m:
            continue
        if m.group(3).strip() in ("|", ">", "|-", ">-"):
            in_block = indent
        prev = lines[i - 1].strip() if i else ""
        if not prev.startswith("#") and "#" not in m.group(3):
            bad.append(f"line {i + 1} ({m.group(2)})")
    if bad:
        raise AssertionError("values without a comment: " + ", ".join(bad))
    return None


def helm_available():
    return shutil.which("helm") is not None


def render(overrides):
    """Rendered manifests: {template: text}. With helm installed it is used; otherwise the
    subset renderer in helmrender.py."""
    if helm_available():
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(overrides, f)
        r = subprocess.run(
            ["helm", "template", "bedside", CHART, "-f", f.name], capture_output=True, text=True
        )
        os.unlink(f.name)
        if r.returncode != 0:
            raise AssertionError(r.stderr.strip())
        return {"helm template": r.stdout}
    return helmrender.render_chart(CHART, overrides)


def k8s_docs(rendered):
    docs = []
    for name, text in rendered.items():
        if not name.endswith(".yaml") and name != "helm template":
            continue
        try:
            docs += [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as e:
            raise AssertionError(f"{name} renders to invalid YAML: {e}")
    return docs


def pod_spec(d):
    return d["spec"]["template"]["spec"]


def helm_variant(overrides, hostnet):
    def fn():
        docs = k8s_docs(render(overrides))
        kinds = {}
        for d in docs:
            for k in ("apiVersion", "kind", "metadata"):
                if k not in d:
                    raise AssertionError(f"a document has no {k}")
            kinds.setdefault(d["kind"], []).append(d["metadata"]["name"])
            if d["kind"] == "Secret":
                raise AssertionError("the chart must not create Secrets")
            if d["kind"] in ("Deployment", "DaemonSet", "StatefulSet"):
                ps = pod_spec(d)
                if ps.get("securityContext", {}).get("runAsNonRoot") is not True:
                    raise AssertionError(f"{d['metadata']['name']}: runAsNonRoot is not true")
                if not ps["securityContext"].get("runAsUser"):
                    raise AssertionError(f"{d['metadata']['name']}: no runAsUser")
                for c in ps["containers"]:
                    sc = c.get("securityContext", {})
                    if sc.get("readOnlyRootFilesystem") is not True:
                        raise AssertionError(f"{c['name']}: root file system not read-only")
                    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                        raise AssertionError(f"{c['name']}: capabilities not dropped")
                    if not c.get("resources", {}).get("requests"):
                        raise AssertionError(f"{c['name']}: no resource requests")
                    if ":" not in c["image"] or c["image"].endswith(":latest"):
                        raise AssertionError(f"{c['name']}: image tag not pinned")
        services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
        media = [s for s in services.values() if any(p["protocol"] == "UDP" and p["port"] == 50000 for p in s["spec"]["ports"])]
        bedside = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "bedside")
        if hostnet:
            if pod_spec(bedside).get("hostNetwork") is not True:
                raise AssertionError("bedside.hostNetwork=true did not set hostNetwork")
            if media:
                raise AssertionError("a UDP media Service exists with hostNetwork")
        else:
            if len(media) != 1:
                raise AssertionError("no UDP media Service without hostNetwork")
            turn = services.get("bedside-turn")
            if not turn or turn["spec"]["type"] != "LoadBalancer":
                raise AssertionError("no LoadBalancer Service for TURN")
            got = {(p["protocol"], p["port"]) for p in turn["spec"]["ports"]}
            if got != {("UDP", 3478), ("TCP", 3478), ("TCP", 443)}:
                raise AssertionError(f"TURN Service ports {sorted(got)}")
        want_sm = bool(overrides.get("serviceMonitor", {}).get("enabled"))
        if bool(kinds.get("ServiceMonitor")) != want_sm:
            raise AssertionError("ServiceMonitor presence does not follow serviceMonitor.enabled")
        if overrides.get("recorder", {}).get("enabled") and "PersistentVolumeClaim" not in kinds:
            raise AssertionError("recorder without a PersistentVolumeClaim")
        how = "helm template" if helm_available() else "tests/deploy/helmrender.py (helm not installed)"
        return f"{len(docs)} objects via {how}"

    return fn


def helm_lint():
    if not helm_available():
        return "skipped: helm not installed (not packaged by Debian)"
    r = subprocess.run(["helm", "lint", CHART], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(r.stdout + r.stderr)
    return "helm lint"


# --- Dockerfiles --------------------------------------------------------------------------
PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d[\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def dockerfile(name):
    def fn():
        p = os.path.join(DEPLOY, "docker", f"{name}.Dockerfile")
        text = read(p)
        stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
        if len(stages) < 2:
            raise AssertionError("not multi-stage")
        stage_names = {s[1] for s in stages if s[1]}
        for image, _ in stages:
            if image in stage_names:
                continue
            if image.endswith(":latest") or not (":" in image or "@sha256:" in image):
                raise AssertionError(f"base image {image} is not pinned")
            if not PINNED.match(image) or not re.search(r"[:@].*\d", image):
                raise AssertionError(f"base image {image} has no version")
        if not stages[0][0].startswith("rust:"):
            raise AssertionError("the build stage is not the official rust image")
        final = stages[-1][0]
        if not (final.startswith("debian:") and "slim" in final) and "distroless" not in final:
            raise AssertionError(f"runtime base {final} is neither debian slim nor distroless")
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        if not users:
            raise AssertionError("no USER")
        user = users[-1].split(":")[0]
        if user in ("root", "0"):
            raise AssertionError("USER is root")
        last_from = text.rfind("\nFROM ")
        if text.rfind("\nUSER ") < last_from:
            raise AssertionError("USER is not set in the runtime stage")
        if name != "bedside-recorder":
            if "HEALTHCHECK" not in text:
                raise AssertionError("no HEALTHCHECK")
            if "EXPOSE" not in text:
                raise AssertionError("no EXPOSE")
        return f"{stages[0][0]} -> {final}, USER {users[-1]}"

    return fn


# --- systemd ------------------------------------------------------------------------------
def unit(path):
    def fn():
        text = read(path)
        keys = {}
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z]+)=(.*)$", line)
            if m:
                keys.setdefault(m.group(1), []).append(m.group(2).strip())
        for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("ProtectHome", "yes")):
            if v not in keys.get(k, []):
                raise AssertionError(f"{k}={v} missing")
        for k in ("User", "RestrictAddressFamilies", "SystemCallFilter"):
            if k not in keys:
                raise AssertionError(f"{k}= missing")
        if keys["User"][0] in ("root", "0"):
            raise AssertionError("runs as root")
        caps = " ".join(keys.get("AmbientCapabilities", []) + keys.get("CapabilityBoundingSet", []))
        is_turn = os.path.basename(path) == "bedside-turn.service"
        if is_turn and "CAP_NET_BIND_SERVICE" not in caps:
            raise AssertionError("bedside-turn needs CAP_NET_BIND_SERVICE for 443")
        if not is_turn and caps.strip():
            raise AssertionError(f"unexpected capabilities: {caps}")
        note = "hardening keys present"
        if shutil.which("systemd-analyze"):
            # verify a copy whose ExecStart points at an existing binary (ours are not installed)
            with tempfile.TemporaryDirectory() as d:
                copy = os.path.join(d, os.path.basename(path))
                with open(copy, "w") as f:
                    f.write(re.sub(r"/usr/bin/bedside[a-z-]*", "/bin/true", text))
                r = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True, cwd=d)
                if r.returncode != 0 or r.stderr.strip():
                    raise AssertionError(f"systemd-analyze verify: {r.stderr.strip()}")
            note += ", systemd-analyze verify clean"
        return note

    return fn


# --- ports --------------------------------------------------------------------------------
def port_table():
    text = read(os.path.join(ROOT, "docs", "operations.md"))
    m = re.search(r"^## Ports\n(.*?)(?=^## )", text, re.M | re.S)
    if not m:
        raise AssertionError("docs/operations.md has no '## Ports' section")
    rows = [l for l in m.group(1).splitlines() if l.startswith("|")]
    if len(rows) < 3 or not re.match(r"^\|\s*port\s*\|", rows[0]):
        raise AssertionError("the Ports section has no table starting with a 'port' column")
    ports = set()
    for row in rows[2:]:
        first = row.split("|")[1]
        ports.update(int(p) for p in re.findall(r"\d+", first))
    return ports


def ports_documented_and_configured():
    ports = port_table()
    sources = glob.glob(os.path.join(DEPLOY, "config", "*.toml"))
    sources += [os.path.join(DEPLOY, "compose.yaml")]
    sources += glob.glob(os.path.join(DEPLOY, "docker", "*.Dockerfile"))
    sources += glob.glob(os.path.join(DEPLOY, "systemd", "*.service"))
    sources += glob.glob(os.path.join(CHART, "**", "*"), recursive=True)
    corpus = {p: read(p) for p in sources if os.path.isfile(p)}
    missing = []
    for port in sorted(ports):
        pat = re.compile(rf"(?<![\d.]){port}(?![\d])")
        if not any(pat.search(t) for t in corpus.values()):
            missing.append(str(port))
    if missing:
        raise AssertionError("ports in docs/operations.md but in no config or manifest: " + ", ".join(missing))
    for want in (8443, 9090, 50000, 3478, 443, 49152, 65535):
        if want not in ports:
            raise AssertionError(f"port {want} is missing from the docs/operations.md table")
    return "ports " + ", ".join(str(p) for p in sorted(ports))


def main():
    for p in yaml_files():
        check(f"YAML parses: {rel(p)}", parse_yaml(p))
    check("JSON parses: deploy/grafana/bedside.json", grafana_json)
    check("compose.yaml: services, ports, secrets, read-only mounts", compose_structure)
    check("compose.yaml: compose config", compose_config)
    check("helm: every .Values reference exists in values.yaml", values_refs_exist)
    check("helm: every key of values.yaml is commented", values_commented)
    check("helm lint", helm_lint)
    for vname, ov in VARIANTS.items():
        hostnet = bool(ov.get("bedside", {}).get("hostNetwork"))
        check(f"helm template ({vname}): valid objects, non-root, read-only, requests", helm_variant(ov, hostnet))
    for name in BINARIES:
        check(f"Dockerfile: deploy/docker/{name}.Dockerfile", dockerfile(name))
    for p in sorted(glob.glob(os.path.join(DEPLOY, "systemd", "*.service"))):
        check(f"systemd: {rel(p)}", unit(p))
    for name in BINARIES:
        check(f"systemd: unit for {name} exists", lambda n=name: None if os.path.isfile(os.path.join(DEPLOY, "systemd", f"{n}.service")) else (_ for _ in ()).throw(AssertionError("missing")))
    check("docs/operations.md: every port in the table is in a config or manifest", ports_documented_and_configured)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
