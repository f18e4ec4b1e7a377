"""Offline checks of ``deploy/``: nothing here needs docker, a cluster or the network.

- Kubernetes manifests validate against the schemas ``kubernetes-validate`` ships (strict:
  unknown fields fail); the ServiceMonitor CRD is not among them and is checked by hand.
- yamllint (``deploy/.yamllint.yaml``) passes over every YAML file in ``deploy/``.
- The compose file has the structure compose needs (docker is not runnable here).
- ``promtool`` accepts ``deploy/prometheus.yml`` and every PromQL expression of the dashboard.
- One test reads every artefact and checks that ports, paths, backend targets, grace periods
  and metric names agree with each other and with ``docs/contracts.md``.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from yamllint import linter  # type: ignore[import-untyped]
from yamllint.config import YamlLintConfig  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "tfs-gateway-dashboard.json"
CONTRACTS = ROOT / "docs" / "contracts.md"

# The oldest Kubernetes the manifests promise to run on, and the newest schemas shipped.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
SCHEMALESS_KINDS = {"ServiceMonitor"}
DEFAULT_HTTP_PORT = 8501
DEFAULT_GATEWAY_GRPC_PORT = 8001  # server.grpc_port's default (docs/contracts.md)
DEFAULT_METRICS_PATHS = ("/monitoring/prometheus/metrics", "/metrics")
DEFAULT_SHUTDOWN_GRACE_SECONDS = 25
# tensorflow/serving's entrypoint script runs tensorflow_model_server --port=8500.
TFSERVING_IMAGE_GRPC_PORT = 8500
# A parsed YAML or JSON value: the artefacts are checked, not trusted to have a shape.
Node = Any
MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


# --- loading -------------------------------------------------------------------------------


def load_yaml(path: Path) -> Node:
    return yaml.safe_load(path.read_text())


@functools.cache  # parsed once per run; nothing mutates the result
def k8s_docs() -> list[dict[str, Any]]:
    return [doc for name in MANIFESTS for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def k8s_one(kind: str) -> Node:
    found = [doc for doc in k8s_docs() if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(name: str) -> Node:
    containers = k8s_one("Deployment")["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


@functools.cache
def compose() -> Node:
    return load_yaml(COMPOSE)


# --- small parsers -------------------------------------------------------------------------


@functools.cache
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def resolve_args(value: str) -> str:
    args = dict(a.split("=", 1) for op, a in dockerfile_instructions() if op == "ARG" and "=" in a)
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)


def url_port_and_path(text: str) -> tuple[int, str]:
    match = re.search(r"http://[\w.\-]+:(\d+)(/[\w/\-]*)", text)
    assert match, f"no http URL in {text!r}"
    return int(match.group(1)), match.group(2)


def seconds(duration: str | int) -> float:
    if isinstance(duration, int):
        return duration
    parts = re.fullmatch(r"((\d+)h)?((\d+)m(?!s))?((\d+)s)?((\d+)ms)?", duration)
    assert parts and duration, f"bad duration {duration!r}"
    h, m, s, ms = (int(parts.group(i) or 0) for i in (2, 4, 6, 8))
    return h * 3600 + m * 60 + s + ms / 1000


def flag(args: list[str], name: str) -> str | None:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return values[-1] if values else None


def prestop_sleep(c: dict[str, Any]) -> int:
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", f"{c['name']}: preStop is not a sleep: {command}"
    return int(command[1])


def target_ports(targets: list[str]) -> set[int]:
    return {int(t.rsplit(":", 1)[1]) for t in targets}


def target_hosts(targets: list[str]) -> set[str]:
    return {t.rsplit(":", 1)[0] for t in targets}


def resolve_port(port: int | str, c: dict[str, Any]) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in c["ports"] if p.get("name") == port))


# --- gateway config (YAML parsed directly, never gateway.config.schema) ----------------------------


def configmap_entry(key: str) -> str:
    maps = [d for d in k8s_docs() if d["kind"] == "ConfigMap" and key in d.get("data", {})]
    assert len(maps) == 1, f"expected one ConfigMap holding {key}"
    return str(maps[0]["data"][key])


def k8s_gateway_config() -> Node:
    return yaml.safe_load(configmap_entry("config.yaml"))


def compose_gateway_config() -> Node:
    return load_yaml(DEPLOY / "config.compose.yaml")


def http_port(config: dict[str, Any]) -> int:
    return int(config.get("server", {}).get("port", DEFAULT_HTTP_PORT))


def gateway_grpc_port(config: dict[str, Any]) -> int:
    return int(config.get("server", {}).get("grpc_port", DEFAULT_GATEWAY_GRPC_PORT))


def metrics_paths(config: dict[str, Any]) -> tuple[str, ...]:
    return tuple(config.get("metrics", {}).get("paths", DEFAULT_METRICS_PATHS))


def shutdown_grace(config: dict[str, Any]) -> float:
    return float(config.get("server", {}).get("shutdown_grace_seconds", DEFAULT_SHUTDOWN_GRACE_SECONDS))


def backend_targets(config: dict[str, Any]) -> list[str]:
    return [t for backend in config["backends"].values() for t in backend["targets"]]


def deployment_models(config: dict[str, Any]) -> set[str]:
    return {d["model"] for d in config["deployments"].values()}


def health_check_models(config: dict[str, Any]) -> set[str]:
    return {b["health_check"]["model"] for b in config["backends"].values() if "health_check" in b}


# --- contracts and PromQL ------------------------------------------------------------------


@functools.cache
def contract_metrics() -> dict[str, set[str]]:
    """Metric name -> allowed labels, from docs/contracts.md (histograms get their series)."""
    metrics: dict[str, set[str]] = {}
    for line in CONTRACTS.read_text().splitlines():
        for name, labels in re.findall(r"`(tfs_gateway_\w+)(?:\{([^}]*)\})?`", line):
            allowed = {lbl.strip() for lbl in labels.split(",") if lbl.strip()} | {"job", "instance"}
            metrics[name] = allowed
            if "histogram" in line:
                metrics.update({f"{name}{s}": allowed | {"le"} for s in ("_bucket", "_sum", "_count")})
    return metrics


PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


# label_replace(v, "dst", "replacement", "src", "regex"): its last four arguments.
_LABEL_REPLACE = re.compile(r',\s*"(\w+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*"(\w+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*\)')


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression refers to.

    A label that ``label_replace`` makes (the dashboard's ``protocol``) need not exist on a metric;
    the label it is made from must.
    """
    made = _LABEL_REPLACE.findall(expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    labels = {m for sel in re.findall(r"\{([^}]*)\}", expr) for m in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel)}
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    labels |= {lbl.strip() for group in re.findall(grouping, expr) for lbl in group.split(",") if lbl.strip()}
    bare = re.sub(grouping, " ", re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr))
    words = set(re.findall(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\b(?!\s*\()", bare))
    return words - PROMQL_WORDS, (labels - {dst for dst, _ in made}) | {src for _, src in made}


def label_values_names(query: str) -> tuple[set[str], set[str]]:
    match = re.fullmatch(r"label_values\((?:(\w+)(\{.*\})?,\s*)?(\w+)\)", query)
    assert match, f"unexpected variable query {query!r}"
    metric, selector, label = match.groups()
    _, matcher_labels = promql_names(selector or "")
    return ({metric} if metric else set()), matcher_labels | {label}


@functools.cache
def dashboard() -> Node:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard_panels(dashboard()["panels"]) for t in p.get("targets", [])]


def dashboard_queries() -> list[tuple[set[str], set[str]]]:
    variables = [v for v in dashboard()["templating"]["list"] if v["type"] == "query"]
    return [promql_names(e) for e in dashboard_exprs()] + [label_values_names(v["query"]["query"]) for v in variables]


# --- Kubernetes ----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == MANIFESTS


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", MANIFESTS)
def test_manifest_matches_kubernetes_schema(name: str, version: str) -> None:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert docs, f"{name} holds no resource"
    for doc in docs:
        if doc["kind"] not in SCHEMALESS_KINDS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_servicemonitor_selects_the_services_http_port() -> None:
    monitor, service = k8s_one("ServiceMonitor"), k8s_one("Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", monitor["metadata"]["name"])
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels"}
        assert endpoint["port"] == "http" and endpoint["port"] in port_names
        assert endpoint["path"].startswith("/")
        assert seconds(endpoint["scrapeTimeout"]) < seconds(endpoint["interval"])


def test_service_and_pdb_select_the_deployments_pods() -> None:
    pod_labels = k8s_one("Deployment")["spec"]["template"]["metadata"]["labels"].items()
    assert k8s_one("Service")["spec"]["selector"].items() <= pod_labels
    assert k8s_one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= pod_labels
    target = k8s_one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", k8s_one("Deployment")["metadata"]["name"])


def test_gateway_container_is_locked_down() -> None:
    pod = k8s_one("Deployment")["spec"]["template"]["spec"]
    gateway = container("gateway")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
    for c in pod["containers"]:
        assert {"requests", "limits"} <= set(c["resources"]), f"{c['name']} lacks requests or limits"


# --- yamllint ------------------------------------------------------------------------------


def test_yamllint_passes_over_deploy() -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint.yaml"))
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert K8S / "kustomization.yaml" in files
    problems = [
        f"{path.relative_to(ROOT)}:{p.line}:{p.column}: {p.level}: {p.message}"
        for path in files
        for p in linter.run(path.read_text(), config, str(path))
    ]
    assert not problems, "\n".join(problems)


# --- compose -------------------------------------------------------------------------------

COMPOSE_TOP_LEVEL = {"name", "services", "volumes", "networks", "configs", "secrets"}


def test_compose_services_and_images() -> None:
    spec = compose()
    assert set(spec) <= COMPOSE_TOP_LEVEL
    services = spec["services"]
    assert set(services) == {"tfserving", "gateway", "prometheus"}
    assert all("image" in s or "build" in s for s in services.values())
    assert services["tfserving"]["image"].startswith("tensorflow/serving:")
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    build = services["gateway"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert services["tfserving"]["environment"]["MODEL_NAME"] == "half_plus_two"


def test_compose_ports_and_volumes() -> None:
    spec = compose()
    for name, service in spec["services"].items():
        for port in service.get("ports", []):
            assert re.fullmatch(r"(\d+:)?\d+", port), f"{name}: port {port!r} is not HOST:CONTAINER"
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            assert target.startswith("/") and mode in ([], ["ro"]), f"{name}: bad volume {volume!r}"
            if source.startswith("."):
                bind = (COMPOSE.parent / source).resolve()
                assert bind.is_relative_to(ROOT), f"{name}: {source} leaves the repository"
            else:
                assert source in spec["volumes"], f"{name}: named volume {source} is not declared"
    models = spec["services"]["tfserving"]["volumes"][0]
    # examples/build_models.py writes there; the folder itself is build output, not tracked.
    assert models == "../examples/models/half_plus_two:/models/half_plus_two:ro"


def test_compose_healthchecks_and_dependencies() -> None:
    services = compose()["services"]
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test must be exec form"
        assert seconds(check["timeout"]) < seconds(check["interval"])
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"} and "healthcheck" in services[dependency]
    assert set(services["gateway"]["depends_on"]) == {"tfserving"}


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_builds_a_slim_non_root_image_without_tensorflow() -> None:
    instructions = dockerfile_instructions()
    stages = [resolve_args(a).split()[0] for op, a in instructions if op == "FROM"]
    assert len(stages) >= 2 and set(stages) == {"python:3.11-slim"}
    runs = [a for op, a in instructions if op == "RUN"]
    assert any("pip wheel" in r for r in runs), "the build stage must build a wheel"
    assert "tensorflow" not in " ".join(runs).lower()
    final = dict(final_stage())
    assert final["USER"].split(":")[0] not in {"0", "root"}
    assert json.loads(final["ENTRYPOINT"]) == ["tfs-gateway"]
    assert json.loads(final["CMD"]) == ["--config", "/etc/tfs-gateway/config.yaml"]


def test_dockerignore_admits_what_the_wheel_needs() -> None:
    rules = (ROOT / ".dockerignore").read_text().split()
    assert {"*", "!pyproject.toml", "!gateway/"} <= set(rules)


# --- Prometheus and the dashboard ----------------------------------------------------------


def promtool(*args: str, cwd: Path = DEPLOY) -> None:
    run = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_config_passes_promtool() -> None:
    promtool("check", "config", "prometheus.yml")


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    def concrete(expr: str) -> str:
        return re.sub(r"\$\w+", ".*", expr.replace("$__rate_interval", "5m"))

    rules = [{"record": f"dashboard:expr{i}", "expr": concrete(e)} for i, e in enumerate(dashboard_exprs())]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool("check", "rules", "rules.yml", cwd=tmp_path)


def test_dashboard_is_templated_on_one_prometheus_datasource() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    assert any(v["name"] == "DS_PROMETHEUS" and v["type"] == "datasource" for v in board["templating"]["list"])
    panels = list(dashboard_panels(board["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
            assert panel["targets"], panel["title"]


# --- the artefacts agree -------------------------------------------------------------------
# Each helper gathers one fact as every artefact states it; the test reports all mismatches.


def disagreements(topic: str, values: dict[str, object]) -> list[str]:
    """One message if the artefacts state different values (a one-element set counts as its element)."""
    normal = [next(iter(v)) if isinstance(v, set) and len(v) == 1 else v for v in values.values()]
    if len({json.dumps(v, default=sorted) for v in normal}) <= 1:
        return []
    return [f"{topic} disagrees: " + ", ".join(f"{where}={value!r}" for where, value in values.items())]


def violations(topic: str, checks: dict[str, bool]) -> list[str]:
    return [f"{topic}: {what}" for what, ok in checks.items() if not ok]


def service_port(name: str) -> Node:
    return next(p for p in k8s_one("Service")["spec"]["ports"] if p["name"] == name)


def probe(kind: str) -> Node:
    return container("gateway")[kind]["httpGet"]


def pod_annotations() -> Node:
    return k8s_one("Deployment")["spec"]["template"]["metadata"]["annotations"]


def monitor_endpoint() -> Node:
    return k8s_one("ServiceMonitor")["spec"]["endpoints"][0]


def prometheus_job() -> Node:
    return next(j for j in load_yaml(DEPLOY / "prometheus.yml")["scrape_configs"] if j["job_name"] == "tfs-gateway")


def compose_healthcheck_url() -> tuple[int, str]:
    return url_port_and_path(" ".join(compose()["services"]["gateway"]["healthcheck"]["test"]))


def docker_healthcheck_url() -> tuple[int, str]:
    return url_port_and_path(dict(final_stage())["HEALTHCHECK"])


def http_ports() -> dict[str, object]:
    gateway = container("gateway")
    return {
        "k8s ConfigMap server.port": http_port(k8s_gateway_config()),
        "k8s containerPort": resolve_port("http", gateway),
        "k8s Service port": service_port("http")["port"],
        "k8s Service targetPort": resolve_port(service_port("http")["targetPort"], gateway),
        "k8s livenessProbe": resolve_port(probe("livenessProbe")["port"], gateway),
        "k8s readinessProbe": resolve_port(probe("readinessProbe")["port"], gateway),
        "prometheus.io/port": int(pod_annotations()["prometheus.io/port"]),
        "ServiceMonitor port": resolve_port(service_port(monitor_endpoint()["port"])["targetPort"], gateway),
        "compose config server.port": http_port(compose_gateway_config()),
        "compose published port": int(compose()["services"]["gateway"]["ports"][0].split(":")[-1]),
        "compose healthcheck": compose_healthcheck_url()[0],
        "prometheus.yml target": target_ports(prometheus_job()["static_configs"][0]["targets"]),
        "Dockerfile EXPOSE": int(dict(final_stage())["EXPOSE"].split()[0].split("/")[0]),
        "Dockerfile HEALTHCHECK": docker_healthcheck_url()[0],
    }


def gateway_grpc_ports() -> dict[str, object]:
    """The gateway's own gRPC port (server.grpc_port), wherever the artefacts state or publish it."""
    gateway = container("gateway")
    published = [p for p in compose()["services"]["gateway"]["ports"] if str(p).split(":")[0] != "8501"]
    return {
        "contract": DEFAULT_GATEWAY_GRPC_PORT,
        "k8s ConfigMap server.grpc_port": gateway_grpc_port(k8s_gateway_config()),
        "k8s containerPort": resolve_port("grpc-gateway", gateway),
        "k8s Service port": service_port("grpc-gateway")["port"],
        "k8s Service targetPort": resolve_port(service_port("grpc-gateway")["targetPort"], gateway),
        "compose config server.grpc_port": gateway_grpc_port(compose_gateway_config()),
        "compose published port": {int(str(p).split(":")[-1]) for p in published},
        "Dockerfile EXPOSE": int(dict(final_stage())["EXPOSE"].split()[1].split("/")[0]),
    }


def grpc_ports() -> dict[str, object]:
    tfserving, compose_tfserving = container("tfserving"), compose()["services"]["tfserving"]
    return {
        "k8s tfserving --port": int(flag(tfserving["args"], "port") or 0),
        "k8s tfserving containerPort": resolve_port("grpc", tfserving),
        "k8s Service grpc targetPort": resolve_port(service_port("grpc")["targetPort"], tfserving),
        "k8s config targets": target_ports(backend_targets(k8s_gateway_config())),
        "compose config targets": target_ports(backend_targets(compose_gateway_config())),
        "compose tfserving": int(flag(compose_tfserving.get("command", []), "port") or TFSERVING_IMAGE_GRPC_PORT),
    }


def config_file_paths() -> dict[str, object]:
    gateway = container("gateway")
    mount = next(m for m in gateway["volumeMounts"] if m["name"] == "gateway-config")["mountPath"]
    return {
        "Dockerfile CMD": json.loads(dict(final_stage())["CMD"])[-1],
        "k8s args": gateway["args"][-1],
        "k8s mount": f"{mount}/config.yaml",
        "compose mount": compose()["services"]["gateway"]["volumes"][0].split(":")[1],
    }


def scrape_checks() -> dict[str, bool]:
    k8s_paths, compose_paths = metrics_paths(k8s_gateway_config()), metrics_paths(compose_gateway_config())
    return {
        "prometheus.io/path is a gateway metrics path": pod_annotations()["prometheus.io/path"] in k8s_paths,
        "ServiceMonitor path is a gateway metrics path": monitor_endpoint()["path"] in k8s_paths,
        "prometheus.yml metrics_path is a gateway metrics path": prometheus_job().get("metrics_path", "/metrics")
        in compose_paths,
        "the contract's metrics paths are all served": set(DEFAULT_METRICS_PATHS) <= {*k8s_paths} & {*compose_paths},
    }


def backend_checks() -> dict[str, bool]:
    k8s_config, compose_config = k8s_gateway_config(), compose_gateway_config()
    served = set(re.findall(r'name:\s*"(\w+)"', configmap_entry("models.config")))
    compose_model = compose()["services"]["tfserving"]["environment"]["MODEL_NAME"]
    return {
        "k8s sidecar targets are loopback": target_hosts(backend_targets(k8s_config)) <= {"127.0.0.1", "localhost"},
        "compose targets name the tfserving service": target_hosts(backend_targets(compose_config)) == {"tfserving"},
        "k8s ModelServer has no REST port (8501 is the gateway's)": flag(
            container("tfserving")["args"], "rest_api_port"
        )
        == "0",
        "k8s deployments map to models in models.config": deployment_models(k8s_config) <= served,
        "compose deployments map to MODEL_NAME": deployment_models(compose_config) == {compose_model},
        "k8s readiness probes a model in models.config": health_check_models(k8s_config) <= served,
        "compose readiness probes MODEL_NAME": health_check_models(compose_config) <= {compose_model},
    }


def shutdown_checks() -> dict[str, bool]:
    grace = k8s_one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    drain = shutdown_grace(k8s_gateway_config()) + prestop_sleep(container("gateway"))
    stop_grace = seconds(compose()["services"]["gateway"]["stop_grace_period"])
    return {
        f"terminationGracePeriodSeconds {grace} > shutdown grace + gateway preStop ({drain})": grace > drain,
        "ModelServer's preStop outlives the gateway's drain, within the grace period": drain
        <= prestop_sleep(container("tfserving"))
        < grace,
        "compose stop_grace_period > shutdown grace": stop_grace > shutdown_grace(compose_gateway_config()),
    }


def dashboard_checks() -> dict[str, bool]:
    contract = contract_metrics()
    queries = dashboard_queries()
    used = set().union(*(names for names, _ in queries))
    return {
        **{f"{name} is listed in docs/contracts.md": name in contract for name in sorted(used)},
        **{
            f"labels {sorted(labels)} exist on {sorted(names)}": bool(names)
            and labels <= set().union(*(contract.get(n, set()) for n in names))
            for names, labels in queries
        },
    }


def test_ports_and_paths_agree() -> None:
    problems = [
        *disagreements("gateway HTTP port", http_ports()),
        *disagreements("gateway gRPC port", gateway_grpc_ports()),
        *disagreements(
            "liveness path",
            {
                "k8s livenessProbe": probe("livenessProbe")["path"],
                "compose healthcheck": compose_healthcheck_url()[1],
                "Dockerfile HEALTHCHECK": docker_healthcheck_url()[1],
                "contract": "/healthz",
            },
        ),
        *disagreements(
            "readiness path", {"k8s readinessProbe": probe("readinessProbe")["path"], "contract": "/readyz"}
        ),
        *disagreements("ModelServer gRPC port", grpc_ports()),
        *disagreements("gateway config file", config_file_paths()),
        *violations("scrape paths", scrape_checks()),
        *violations("backends", backend_checks()),
        *violations("shutdown", shutdown_checks()),
        *violations("dashboard", dashboard_checks()),
    ]
    assert not problems, "\n".join(problems)


def test_dockerfile_healthcheck_is_exec_form_python() -> None:
    check = dict(final_stage())["HEALTHCHECK"]
    assert json.loads(check.split(" CMD ", 1)[1])[:2] == ["python", "-c"], "slim has no curl: use urllib"
