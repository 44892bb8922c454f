"""The deployment files are valid and agree with the code they deploy.

Schema checks run offline: Kubernetes objects against the schemas bundled in
``kubernetes-validate``, the compose file against the compose-spec schema
vendored in ``check-jsonschema``, every YAML file through ``yamllint`` (which,
unlike a YAML parser, rejects duplicate keys).  The rest checks what a schema
cannot: probes on the right paths, the state volume where the data dir is,
every ``CHURNWATCH_*`` name a real setting, peers able to route to each pod,
the console and the webhook sink started as their commands expect.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram
from yamllint import linter
from yamllint.config import YamlLintConfig

from stream_app.core.policy import load_policy
from stream_app.core.settings import ConfigError, Settings, env_name, from_env
from stream_app.engine import metrics
from stream_app.interfaces.console import server as console_server
from stream_app.interfaces.sink import config as sink_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
SETTING_NAMES = {env_name(f.name) for f in fields(Settings)}
#: The sink's own variables (``CHURNWATCH_SINK_*``), as its config defines them.
SINK_SETTING_NAMES = {sink_config.env_name(f.name) for f in fields(sink_config.SinkSettings)}
SINK_SECRET_NAMES = {sink_config.env_name(n) for n in sink_config.SECRETS}
#: Oldest Kubernetes release we claim to support, and the newest bundled.
K8S_VERSIONS = ("1.30", kubernetes_validate.latest_version())


def exported_samples() -> set[str]:
    names: set[str] = set()
    for m in vars(metrics).values():
        if isinstance(m, Counter):
            names.add(m._name + "_total")
        elif isinstance(m, Histogram):
            names.update(m._name + s for s in ("_bucket", "_sum", "_count"))
        elif isinstance(m, Gauge):
            names.add(m._name)
    return names


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])


def manifests() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects() -> list[dict[str, Any]]:
    return [d for p in manifests() for d in yaml.safe_load_all(p.read_text()) if d]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def dockerfile_env() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line))
    return env


def config_data() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap", "churnwatch-config")["data"]
    return data


def workloads() -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every object that runs churnwatch."""
    for o in k8s_objects():
        if o["kind"] in ("StatefulSet", "Job", "Deployment"):
            yield o["metadata"]["name"], o["spec"]["template"]["spec"]


def worker_container() -> dict[str, Any]:
    (c,) = one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return dict(c)


def deployment_container(name: str) -> dict[str, Any]:
    (c,) = one("Deployment", name)["spec"]["template"]["spec"]["containers"]
    return dict(c)


def option(args: list[str], name: str) -> str:
    """The value after ``name`` in a command line."""
    return args[args.index(name) + 1]


# --- syntax and schemas ---------------------------------------------------------


def test_yaml_files_parse() -> None:
    files = yaml_files()
    assert {COMPOSE, K8S / "statefulset.yaml"} <= set(files)
    for f in files:
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
        assert docs, f


LINT = YamlLintConfig("extends: relaxed\nrules:\n  line-length: {max: 160}\n")


def test_yamllint_finds_no_errors() -> None:
    for f in yaml_files():
        problems = [p for p in linter.run(f.read_text(), LINT) if p.level == "error"]
        assert not problems, (f, [str(p) for p in problems])


def test_yamllint_catches_a_duplicate_key() -> None:
    # A YAML parser keeps the last of two equal keys without a word; this is
    # the class of mistake the lint step is here for.
    text = "services:\n  worker:\n    image: a\n    image: b\n"
    assert any(p.rule == "key-duplicates" for p in linter.run(text, LINT))


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.compose-spec", str(path)], capture_output=True, text=True, timeout=60)


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = compose()
    broken["services"]["worker"]["depend_on"] = broken["services"]["worker"].pop("depends_on")
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(broken))
    assert check_compose(tmp_path / "compose.yml").returncode == 1


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(version: str) -> None:
    objects = k8s_objects()
    assert {o["kind"] for o in objects} >= {
        "StatefulSet", "Deployment", "Service", "ConfigMap", "Job", "PodDisruptionBudget",
        "Secret"}
    for o in objects:
        # strict: unknown fields (a misspelt key) are errors too.
        kubernetes_validate.validate(o, version, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    assert listed == {p.name for p in manifests()} - {"secret.example.yaml"}
    assert kust["namespace"] == one("Namespace")["metadata"]["name"]


# --- docker compose -------------------------------------------------------------


def kafka_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items()
            if str(s.get("image", "")).startswith("apache/kafka")}


def test_compose_runs_a_three_node_kraft_quorum() -> None:
    brokers = kafka_services()
    assert len(brokers) == 3
    envs = {name: s["environment"] for name, s in brokers.items()}
    ids = {name: int(e["KAFKA_NODE_ID"]) for name, e in envs.items()}
    assert len(set(ids.values())) == 3
    voters = {f"{i}@{name}:9093" for name, i in ids.items()}
    for name, e in envs.items():
        assert set(e["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == voters
        assert "broker" in e["KAFKA_PROCESS_ROLES"] and "controller" in e["KAFKA_PROCESS_ROLES"]
        assert f"INTERNAL://{name}:9092" in e["KAFKA_ADVERTISED_LISTENERS"]
        assert int(e["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3
        assert int(e["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3
        assert int(e["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
        assert e["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert any(v.endswith(":/var/lib/kafka/data") for v in brokers[name]["volumes"])
    assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1
    host_ports = [p.split(":")[0] for s in brokers.values() for p in s["ports"]]
    assert len(set(host_ports)) == 3


def worker_settings(service: str) -> Settings:
    """The settings a compose service's container starts with."""
    env = {**dockerfile_env(), **compose()["services"][service]["environment"]}
    env = {k: re.sub(r"\$\{[^}]*\}", "", str(v)) for k, v in env.items()}
    return from_env(env)


def test_compose_creates_topics_once_then_starts_scalable_workers() -> None:
    services = compose()["services"]
    topics, worker = services["topics"], services["worker"]
    assert topics["command"] == ["topics"]
    assert worker["command"] == ["worker", "--no-create-topics"]
    assert worker["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert set(topics["depends_on"]) == set(kafka_services())
    t, w = worker_settings("topics"), worker_settings("worker")
    assert t.partitions == w.partitions == 12
    assert t.replication == w.replication == len(kafka_services())
    assert {u.split("://")[1] for u in w.broker_url.split(";")} == {
        f"{name}:9092" for name in kafka_services()}
    # Replicas of a scaled service must not collide: no fixed name, no fixed
    # host port, and each its own (anonymous) state volume at the data dir.
    assert "container_name" not in worker
    assert all(":" not in str(p) for p in worker["ports"])
    assert worker["volumes"] == [w.data_dir]
    assert w.web_host == "0.0.0.0"
    assert str(w.web_port) in worker["healthcheck"]["test"][-1]


def test_prometheus_discovers_every_worker_replica() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["worker"] and sd["type"] == "A"
    assert sd["port"] == worker_settings("worker").web_port
    assert job["metrics_path"] == "/metrics"
    assert "prometheus" in compose()["services"]


def test_dashboard_uses_only_exported_metrics() -> None:
    dash = json.loads((DEPLOY / "grafana" / "churnwatch-dashboard.json").read_text())
    used = {name for p in dash["panels"] for t in p["targets"]
            for name in re.findall(r"churnwatch_[a-z_]+", t["expr"])}
    assert used and used <= exported_samples(), used - exported_samples()


# --- settings names and values ----------------------------------------------------


def test_every_churnwatch_name_is_a_setting() -> None:
    # (where, names): the sink's CHURNWATCH_SINK_* variables are its own
    # settings, valid only where the sink runs; the others refuse them.
    places: list[tuple[str, set[str]]] = [("Dockerfile", set(dockerfile_env())),
                                          ("ConfigMap", set(config_data()))]
    for name, service in compose()["services"].items():
        places.append((f"compose {name}", set(service.get("environment", {}))))
    for name, pod in workloads():
        for c in pod["containers"]:
            places.append((name, {e["name"] for e in c.get("env", [])}))
    sinks = {"compose sink", "churnwatch-sink"}
    assert sinks <= {where for where, _ in places}
    used: set[str] = set()
    for where, names in places:
        churnwatch = {n for n in names if n.startswith("CHURNWATCH_")}
        allowed = SETTING_NAMES | (SINK_SETTING_NAMES if where in sinks else set())
        assert churnwatch <= allowed, (where, churnwatch - allowed)
        used |= churnwatch
    assert {"CHURNWATCH_DATA_DIR", "CHURNWATCH_SASL_PASSWORD", "CHURNWATCH_SINK_URL"} <= used
    assert used >= SINK_SECRET_NAMES


def pod_environment(pod_name: str, namespace: str,
                    container: dict[str, Any] | None = None) -> dict[str, str]:
    """A container's environment (the worker's by default) as Kubernetes would
    expand it for one pod, with the example Secrets."""
    secrets = {(o["metadata"]["name"], k): v for o in k8s_objects() if o["kind"] == "Secret"
               for k, v in o["stringData"].items()}
    env = dict(config_data())
    for e in (container or worker_container())["env"]:
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], e["value"])
        elif "fieldRef" in e["valueFrom"]:
            path = e["valueFrom"]["fieldRef"]["fieldPath"]
            env[e["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[path]
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"], ref["key"]]
    return {k: v for k, v in env.items() if k.startswith("CHURNWATCH_")}


def test_k8s_settings_validate_and_routing_reaches_each_pod(tmp_path: Path) -> None:
    env = pod_environment("churnwatch-2", "churnwatch")
    policy = tmp_path / "policy.toml"
    policy.write_text(one("ConfigMap", "churnwatch-policy")["data"]["policy.toml"])
    s = from_env({**env, "CHURNWATCH_POLICY_FILE": str(policy)})
    load_policy(policy)
    assert s.web_host == "0.0.0.0"
    assert s.uses_sasl and s.uses_ssl
    headless = one("StatefulSet")["spec"]["serviceName"]
    assert s.canonical_url == f"http://churnwatch-2.{headless}.churnwatch.svc:{s.web_port}"


def test_dependent_env_vars_are_defined_before_use() -> None:
    # Kubernetes expands $(VAR) only from variables listed earlier (or from
    # envFrom); a later one is left as literal text in the URL.
    for _, pod in workloads():
        for c in pod["containers"]:
            seen = set(config_data()) if c.get("envFrom") else set()
            for e in c.get("env", []):
                for ref in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                    assert ref in seen, (c["name"], e["name"], ref)
                seen.add(e["name"])


# --- Kubernetes: the worker StatefulSet and what surrounds it ----------------------


def test_worker_probes_ports_and_scrape_annotations() -> None:
    sts = one("StatefulSet")
    c = worker_container()
    port = int(config_data()["CHURNWATCH_WEB_PORT"])
    (http,) = c["ports"]
    assert http["containerPort"] == port
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": http["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": http["name"]}
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    ann = sts["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true"
    assert int(ann["prometheus.io/port"]) == port
    assert ann["prometheus.io/path"] == "/metrics"
    # Workers ensure the topics exist as well, which checks partition counts.
    assert c["args"] == ["worker"]


def test_state_lives_on_a_persistent_volume_at_the_data_dir() -> None:
    sts = one("StatefulSet")
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m["mountPath"] for m in worker_container()["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == config_data()["CHURNWATCH_DATA_DIR"]
    assert config_data()["CHURNWATCH_STORE"] == "rocksdb://"
    # The image runs as this uid; fsGroup makes the fresh volume writable to it.
    uid = int(re.search(r"--uid (\d+)", (DEPLOY / "Dockerfile").read_text())[1])  # type: ignore[index]
    pod_sc = sts["spec"]["template"]["spec"]["securityContext"]
    assert pod_sc["runAsUser"] == pod_sc["fsGroup"] == uid


def test_services_and_budget_select_the_workers() -> None:
    sts = one("StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    api = one("Service", "churnwatch")
    for svc in (headless, api):
        assert svc["spec"]["selector"].items() <= labels.items()
        (port,) = svc["spec"]["ports"]
        assert port["targetPort"] == worker_container()["ports"][0]["name"]
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    assert sts["spec"]["replicas"] <= int(config_data()["CHURNWATCH_PARTITIONS"])


def test_every_container_has_requests_and_limits() -> None:
    for name, pod in workloads():
        for c in pod["containers"]:
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][part]), (name, c["name"], part)


def test_secrets_come_from_secret_refs_that_the_example_defines() -> None:
    example = {(o["metadata"]["name"], k) for o in k8s_objects() if o["kind"] == "Secret"
               for k in o["stringData"]}
    worker_secrets = {"CHURNWATCH_API_TOKEN", "CHURNWATCH_SASL_USERNAME",
                      "CHURNWATCH_SASL_PASSWORD"}
    secret_settings = worker_secrets | SINK_SECRET_NAMES
    assert not secret_settings & set(config_data())
    refs: dict[str, dict[str, tuple[str, str]]] = {}
    for name, pod in workloads():
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.setdefault(name, {})[e["name"]] = (ref["name"], ref["key"])
                assert e["name"] not in secret_settings or ref, (name, e["name"])
    assert set(refs["churnwatch"]) == worker_secrets
    # The topic Job talks to the same secured cluster.
    sasl = {k: v for k, v in refs["churnwatch"].items() if "SASL" in k}
    assert refs["churnwatch-topics"] == sasl
    # The console reads the workers' token (it also sends it on its look-ups).
    assert refs["churnwatch-console"] == refs["churnwatch"]
    sink = refs["churnwatch-sink"]
    assert set(sink) == SINK_SECRET_NAMES | {"CHURNWATCH_SINK_URL"} | set(sasl)
    assert {k: v for k, v in sink.items() if "SASL" in k} == sasl
    assert {ref for r in refs.values() for ref in r.values()} <= example


def test_topic_job_uses_the_worker_settings_and_mounts_their_files() -> None:
    job = one("Job")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["topics"]
    assert c["image"] == worker_container()["image"]
    assert c["envFrom"] == worker_container()["envFrom"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


def test_files_named_in_settings_are_mounted_where_they_are_read() -> None:
    # Settings are validated at start-up, a missing policy or CA file is fatal.
    maps = {o["metadata"]["name"]: o["data"] for o in k8s_objects() if o["kind"] == "ConfigMap"}
    files = {k: v for k, v in config_data().items() if k.endswith("_FILE") and v}
    assert "CHURNWATCH_POLICY_FILE" in files
    for name, pod in workloads():
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            for setting, path in files.items():
                mount = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
                assert len(mount) == 1, (name, setting, path)
                source = volumes[mount[0]["name"]]
                if "configMap" in source:
                    key = path[len(mount[0]["mountPath"]) + 1:]
                    assert key in maps[source["configMap"]["name"]], (name, setting, key)


# --- the console and the webhook sink ------------------------------------------------


def test_compose_console_reads_the_workers_settings_and_reaches_a_worker() -> None:
    services = compose()["services"]
    console, worker = services["console"], services["worker"]
    args = console["command"]
    assert args[0] == "console"
    assert option(args, "--host") == "0.0.0.0"
    port = int(option(args, "--port"))
    assert console["ports"] == [f"{port}:{port}"]
    assert f"http://127.0.0.1:{port}/health" in console["healthcheck"]["test"][-1]
    assert "/health" in console_server.OPEN
    # The worker service's DNS name answers with any replica, on its web port.
    assert option(args, "--worker-url") == f"http://worker:{worker_settings('worker').web_port}"
    assert console["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    env, worker_env = console["environment"], worker["environment"]
    assert {k: v for k, v in worker_env.items() if k != "CHURNWATCH_WEB_PORT"} == env
    assert worker_settings("console").broker_url == worker_settings("worker").broker_url


def test_compose_sink_runs_only_with_its_profile_and_its_settings_validate() -> None:
    services = compose()["services"]
    sink = services["sink"]
    assert sink["profiles"] == ["sink"]
    assert [n for n, s in services.items() if "profiles" in s] == ["sink"]
    assert sink["command"] == ["sink", "webhook"]
    assert sink["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    env = {k: str(v) for k, v in sink["environment"].items()}
    # The URL and the secrets come from the caller's environment, unset by default.
    for name in SINK_SECRET_NAMES | {"CHURNWATCH_SINK_URL"}:
        assert env[name] == f"${{{name}:-}}", name
    # Unset, the sink refuses to start, naming the variable to set.
    expanded = {k: re.sub(r"\$\{[^}:]*:-([^}]*)\}", r"\1", v) for k, v in env.items()}
    with pytest.raises(ConfigError, match="CHURNWATCH_SINK_URL"):
        sink_config.from_env(expanded)
    s = sink_config.from_env({**expanded, "CHURNWATCH_SINK_URL": "https://crm.example.com/x"})
    assert s.sink_format == "raw" and s.sink_metrics_port > 0
    core = worker_settings("sink")
    assert core.broker_url == worker_settings("worker").broker_url


def test_k8s_console_probes_an_open_route_and_its_service_selects_it() -> None:
    dep = one("Deployment", "churnwatch-console")
    c = deployment_container("churnwatch-console")
    args = c["args"]
    assert args[0] == "console" and option(args, "--host") == "0.0.0.0"
    (http,) = c["ports"]
    assert http["containerPort"] == int(option(args, "--port"))
    for probe in ("livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] == http["name"]
        assert get["path"] in console_server.OPEN, (probe, get["path"])
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    svc = one("Service", "churnwatch-console")
    assert svc["spec"]["selector"].items() <= labels.items()
    assert not svc["spec"]["selector"].items() <= one(
        "StatefulSet")["spec"]["template"]["metadata"]["labels"].items()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == http["name"]
    # Look-ups go to the API service on the workers' port.
    api = one("Service", "churnwatch")
    assert option(args, "--worker-url") == (
        f"http://{api['metadata']['name']}:{api['spec']['ports'][0]['port']}")
    assert c["image"] == worker_container()["image"]
    assert c["envFrom"] == worker_container()["envFrom"]
    # Every console pod must share one token: a made-up one would differ.
    (token,) = [e for e in c["env"] if e["name"] == "CHURNWATCH_API_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"].get("optional", False) is False
    s = from_env({**pod_environment("console-0", "churnwatch", c),
                  "CHURNWATCH_POLICY_FILE": ""})
    assert s.api_token


def test_k8s_sink_is_one_replica_and_its_settings_validate() -> None:
    dep = one("Deployment", "churnwatch-sink")
    assert dep["spec"]["replicas"] == 1
    c = deployment_container("churnwatch-sink")
    assert c["args"] == ["sink", "webhook"]
    assert c["image"] == worker_container()["image"]
    assert c["envFrom"] == worker_container()["envFrom"]
    env = pod_environment("sink-0", "churnwatch", c)
    s = sink_config.from_env(env)
    assert s.sink_url.startswith("https://")
    assert s.sink_secret and s.sink_authorization
    # The core settings ignore the sink's variables, as `churnwatch sink` does.
    core = {k: v for k, v in env.items() if not sink_config.is_sink_variable(k)}
    assert from_env({**core, "CHURNWATCH_POLICY_FILE": ""}).uses_sasl
    (metrics_port,) = c["ports"]
    assert metrics_port["containerPort"] == s.sink_metrics_port
    assert c["livenessProbe"]["tcpSocket"]["port"] == metrics_port["name"]
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert int(ann["prometheus.io/port"]) == s.sink_metrics_port
    # Without its URL the pod must not start (rather than post to a placeholder).
    (url,) = [e for e in c["env"] if e["name"] == "CHURNWATCH_SINK_URL"]
    assert url["valueFrom"]["secretKeyRef"].get("optional", False) is False
