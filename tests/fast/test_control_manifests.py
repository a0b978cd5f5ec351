"""The OpenStack service-roles of the model as every master writes them (objects SLS).

Reads the shared render of every node of every deployment (``collect.rendered``: the
batch renderer's ``state.show_sls``, also used by the schema tests; no extra render pass)
and checks the objects against the model: one object per file under <objects dir>/openstack, the
zero-downtime shape (rolling updates that never lose a ready pod, probes, graceful stop,
a PDB that agrees), the config and secret hashes recomputed from the model and the
decrypted secrets, per-release Jobs, the Secret (only file with secret values, 0600 in a
0700 directory, no diff shown) and the apply plan's order (the contract with
kubernetes.master.apply, formulas/kubernetes/control/README.md).

Secret values are compared without ever being part of an assertion's introspected
expression, so a failure cannot print them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import yaml

from stacksalt import objects, paths, secrets
from stacksalt.deployment import Deployment
from stacksalt.validate import collect

pytestmark = pytest.mark.fast

PREFIX = "kubernetes-master-object"
HANDLERS = ("httpGet", "tcpSocket", "exec")


@pytest.fixture(scope="module")
def model(deployment) -> dict[str, Any]:
    """Per master: the control pillar, the image builds and the whole parameters."""
    dep = Deployment.load(deployment)
    masters = {}
    for node in dep.node_names:
        params = dep.parameters(node)
        control = params.get("kubernetes", {}).get("control", {})
        if control.get("enabled"):
            masters[node] = params
    assert len(masters) == 3, masters.keys()
    return masters


def objects_dir(params: dict[str, Any]) -> str:
    """kubernetes:master:objects:dir of the model, else the formula's default."""
    default = objects.defaults()["kubernetes"]["master"]["objects"]["dir"]
    return params["kubernetes"]["master"].get("objects", {}).get("dir") or default


@pytest.fixture(scope="module")
def written(deployment, model) -> dict[str, dict[str, dict[str, Any]]]:
    """{master: {path relative to <objects dir>/openstack: {id, dataset, mode,
    show_changes}}}, and under "apply-plan.yaml" the plan with the OpenStack steps only
    (their files relative to openstack/ too)."""
    rendered = collect.rendered(deployment)
    out = {}
    for node, params in model.items():
        top = objects_dir(params).rstrip("/") + "/"
        files = {}
        for state_id, state in rendered[node].items():
            if not state_id.startswith(PREFIX) or not isinstance(state, dict):
                continue
            for call, kwargs in collect.state_calls(state):
                if call != "file.serialize":
                    continue
                assert kwargs["name"].startswith(top), (state_id, kwargs["name"])
                rel = kwargs["name"][len(top):]
                if rel == "apply-plan.yaml":
                    plan = dict(kwargs["dataset"])
                    plan["steps"] = [dict(s, file=s["file"][len("openstack/"):])
                                     for s in plan["steps"] if s["component"] == "openstack"]
                    files[rel] = {"id": state_id, **kwargs, "dataset": plan}
                elif rel.startswith("openstack/"):
                    files[rel[len("openstack/"):]] = {"id": state_id, **kwargs}
        out[node] = files
    return out


DEFAULTS = yaml.safe_load((paths.formulas_dir() / "kubernetes" / "control" / "defaults.yaml")
                          .read_text())


def setting(control: dict[str, Any], key: str) -> Any:
    """A kubernetes:control setting: the model's, else the formula's default."""
    return control.get(key, DEFAULTS[key])


def roles(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = params["kubernetes"]["control"]["service"]
    return {r: s for r, s in services.items() if s.get("enabled")}


def of_kind(files: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {f["dataset"]["metadata"]["name"]: f["dataset"] for f in files.values()
            if collect.is_object(f["dataset"]) and f["dataset"]["kind"] == kind}


def sha256_json(data: Any) -> str:
    # Salt's `json` filter: sorted keys, ensure_ascii off
    text = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def test_every_master_writes_every_role(model, written):
    for node, params in model.items():
        files = written[node]
        control = params["kubernetes"]["control"]
        for role, spec in roles(params).items():
            kind = spec.get("kind", "Deployment")
            d = f"{int(spec['order']):02d}-{role}"
            want = {f"{d}/{kind.lower()}-{role}.yaml"}
            if spec.get("ports"):
                want.add(f"{d}/service-{role}.yaml")
            if kind == "Deployment":
                want.add(f"{d}/poddisruptionbudget-{role}.yaml")
            version = params["docker"]["build"]["image"][spec["image"]]["version"]
            want |= {f"{d}/job-{role}-{job}-{version}.yaml" for job in spec.get("jobs", {})}
            want |= {f"{d}/persistentvolumeclaim-{role}-{v}.yaml"
                     for v, vol in spec.get("volumes", {}).items() if vol["type"] == "pvc"}
            missing = want - set(files)
            assert not missing, f"{node}: {role}: {sorted(missing)}"
        assert f"00-namespace/namespace-{control['namespace']}.yaml" in files
        assert f"00-secret/secret-{control['secret_name']}.yaml" in files
        assert "apply-plan.yaml" in files
        # the masters agree: the same objects everywhere (any of them may apply)
        first = written[next(iter(model))]
        assert {p: f["dataset"] for p, f in files.items()} == {
            p: f["dataset"] for p, f in first.items()}


def test_workloads_have_the_zero_downtime_shape(model, written):
    for node, params in model.items():
        control = params["kubernetes"]["control"]
        builds = params["docker"]["build"]["image"]
        files = written[node]
        workloads = {**of_kind(files, "Deployment"), **of_kind(files, "DaemonSet")}
        for role, spec in roles(params).items():
            obj = workloads[role]
            pod = obj["spec"]["template"]["spec"]
            build = builds[spec["image"]]
            image = (f"{control['registry']}/{control['image_namespace']}/{spec['image']}:"
                     f"{build['version']}")
            if obj["kind"] == "Deployment":
                assert obj["spec"]["replicas"] == spec.get("replicas", 1), role
                strategy = obj["spec"]["strategy"]
                if spec.get("strategy") == "Recreate":
                    assert strategy == {"type": "Recreate"}, role
                else:
                    assert strategy["type"] == "RollingUpdate", role
                    assert strategy["rollingUpdate"]["maxUnavailable"] == 0, role
                    assert strategy["rollingUpdate"]["maxSurge"] >= 1, role
                pdb = of_kind(files, "PodDisruptionBudget")[role]
                assert pdb["spec"]["selector"] == obj["spec"]["selector"]
                assert 0 <= pdb["spec"]["minAvailable"] <= max(obj["spec"]["replicas"] - 1, 0)
            else:
                assert obj["kind"] == "DaemonSet" == spec["kind"]
                group = control["node_groups"][spec.get("nodes", "control")]
                assert pod["nodeSelector"] == group["labels"]
                assert pod.get("hostNetwork") is spec.get("host_network", False)
                if pod.get("hostNetwork"):
                    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
            assert pod["terminationGracePeriodSeconds"] > 0
            assert [c["name"] for c in pod["containers"]] == list(spec["containers"])
            for c in pod["containers"]:
                model_c = spec["containers"][c["name"]]
                assert c["image"] == image and c["imagePullPolicy"] == "Always"
                assert c["command"] == [setting(control, "entrypoint"), model_c["command"]]
                assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
                probe = c["readinessProbe"]
                handlers = [{k: p[k] for k in HANDLERS if k in p}
                            for p in (probe, c["livenessProbe"], c["startupProbe"])]
                assert handlers[0] == handlers[1] == handlers[2] and len(handlers[0]) == 1
                if "http" in model_c["probe"]:
                    assert probe["httpGet"] == {"path": model_c["probe"]["http"],
                                                "port": model_c["port"]}
                elif "tcp" in model_c["probe"]:
                    assert probe["tcpSocket"] == {"port": model_c["probe"]["tcp"]}
                else:
                    name = model_c["probe"]["process"]
                    script = probe["exec"]["command"][-1]
                    assert f"'[{name[0]}]{name[1:]}' /proc/[0-9]*/cmdline" in script
                if model_c.get("port"):
                    assert c["ports"] == [{"name": model_c["port"], "protocol": "TCP",
                                           "containerPort": spec["ports"][model_c["port"]]}]
                env = {e["name"]: e for e in c["env"]}
                assert set(env) == set(spec.get("env", {})) | set(spec.get("secret_env", {}))
                for var, value in spec.get("env", {}).items():
                    assert env[var] == {"name": var, "value": value}
                for var, secret in spec.get("secret_env", {}).items():
                    assert env[var] == {"name": var, "valueFrom": {"secretKeyRef": {
                        "name": control["secret_name"], "key": secret}}}


def test_pod_annotations_hash_config_and_secrets(deployment, model, written):
    values = secrets.decrypt_all(deployment)
    for node, params in model.items():
        files = written[node]
        workloads = {**of_kind(files, "Deployment"), **of_kind(files, "DaemonSet")}
        for role, spec in roles(params).items():
            build = params["docker"]["build"]["image"][spec["image"]]
            baked = {}
            for path in build.get("pillar", []):
                value: Any = params
                for part in path.split(":"):
                    value = value[part]
                baked[path] = value
            notes = workloads[role]["spec"]["template"]["metadata"]["annotations"]
            assert notes["stacksalt.io/config-hash"] == sha256_json(baked), role
            used = {s: values[s] for s in spec.get("secret_env", {}).values()}
            ok = notes["stacksalt.io/secret-hash"] == sha256_json(used)
            assert ok, f"{role}: secret-hash is not the sha256 of its secrets"
    # distinct configs, distinct hashes
    hashes = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"][
        "stacksalt.io/config-hash"] for w in of_kind(next(iter(written.values())),
                                                     "Deployment").values()}
    assert len(set(hashes.values())) == len(hashes), hashes


def test_services_select_only_the_workload_pods(model, written):
    for node, params in model.items():
        files = written[node]
        workloads = of_kind(files, "Deployment")
        jobs = of_kind(files, "Job")
        for role, svc in of_kind(files, "Service").items():
            spec = roles(params)[role]
            assert svc["spec"]["type"] == spec.get("service_type", "ClusterIP")
            assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == spec["ports"]
            assert all(p["targetPort"] == p["name"] for p in svc["spec"]["ports"])
            selector = svc["spec"]["selector"]
            labels = workloads[role]["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items()
            for job in jobs.values():
                job_labels = job["spec"]["template"]["metadata"]["labels"]
                assert not selector.items() <= job_labels.items(), job["metadata"]["name"]


def test_jobs_are_per_release(model, written):
    for node, params in model.items():
        control = params["kubernetes"]["control"]
        jobs = of_kind(written[node], "Job")
        seen = set()
        for role, spec in roles(params).items():
            version = params["docker"]["build"]["image"][spec["image"]]["version"]
            for job, modes in spec.get("jobs", {}).items():
                modes = [modes] if isinstance(modes, str) else modes
                name = f"{role}-{job}-{version}"
                obj = jobs[name]
                seen.add(name)
                assert obj["spec"]["ttlSecondsAfterFinished"] == setting(control, "job_ttl")
                assert obj["spec"]["backoffLimit"] == setting(control, "job_backoff_limit")
                pod = obj["spec"]["template"]["spec"]
                assert pod["restartPolicy"] == "Never"
                run = [c["command"][-1] for c in (*pod.get("initContainers", ()),
                                                  *pod["containers"])]
                assert run == modes, (name, run)
                assert len(pod["containers"]) == 1
                # immutable pod template: nothing in it may change within a release
                assert "annotations" not in obj["spec"]["template"]["metadata"]
        assert seen == set(jobs)


def test_persistent_volumes(model, written):
    for node, params in model.items():
        claims = of_kind(written[node], "PersistentVolumeClaim")
        for role, spec in roles(params).items():
            for vol, v in spec.get("volumes", {}).items():
                if v["type"] != "pvc":
                    continue
                claim = claims[f"{role}-{vol}"]
                assert claim["spec"]["resources"]["requests"]["storage"] == v["size"]
                # a rolling update runs old and new pod at once, maybe on two nodes
                want = "ReadWriteOnce" if spec.get("strategy") == "Recreate" else "ReadWriteMany"
                assert claim["spec"]["accessModes"] == [v.get("access_mode", want)], claim
        assert claims["keystone-fernet-keys"]["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claims["glance-api-images"]["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_secret_is_the_only_file_with_secret_values(deployment, model, written):
    values = secrets.decrypt_all(deployment)
    rendered = collect.rendered(deployment)
    for node, params in model.items():
        control = params["kubernetes"]["control"]
        files = written[node]
        path = f"00-secret/secret-{control['secret_name']}.yaml"
        secret = files[path]
        assert secret["mode"] == "0600" and secret["show_changes"] is False
        directory = rendered[node][
            "kubernetes-master-objects-openstack-00-secret-directory-managed"]
        assert dict(next(collect.state_calls(directory))[1])["mode"] == "0700"
        assert all(f["mode"] == "0644" for p, f in files.items() if p != path)
        obj = secret["dataset"]
        assert obj["type"] == "Opaque" and "stringData" not in obj
        used = {s for spec in roles(params).values() for s in spec.get("secret_env", {}).values()}
        assert set(obj["data"]) == used  # only what the pods reference
        ok = all(base64.b64decode(obj["data"][s]).decode() == values[s] for s in used)
        assert ok, "a Secret value does not decode to the secrets pillar's value"
        # no value, plain or base64, in any other state of the node's render
        needles = [v for s in used for v in (values[s], obj["data"][s])]
        leaks = sorted({state_id for state_id, state in rendered[node].items()
                        if state_id != secret["id"]
                        and any(n in json.dumps(state) for n in needles)})
        assert leaks == [], "states that contain a secret value"
        # the collected objects (what every schema test prints) carry no value either
        collected = [o for m, p, o in collect.objects_in({node: rendered[node]})
                     if o.get("kind") == "Secret"]
        assert len(collected) == 1
        assert set(collected[0]["data"].values()) == {collect.REDACTED_B64}


def test_stale_manifests_are_removed(model, written, deployment):
    rendered = collect.rendered(deployment)
    for node in model:
        state = rendered[node]["kubernetes-master-objects-stale-files-removed"]
        _, kwargs = next(collect.state_calls(state))
        assert kwargs["clean"] is True
        required = {r["file"] for r in kwargs["require"]}
        assert {f["id"] for f in written[node].values()} <= required


def test_apply_plan_order(model, written):
    for node, params in model.items():
        files = written[node]
        plan = files["apply-plan.yaml"]["dataset"]
        assert not collect.is_object(plan)  # not a Kubernetes object
        control = params["kubernetes"]["control"]
        steps = [dict(s) for s in plan["steps"]]
        spec_of = roles(params)
        objs = {p: f["dataset"] for p, f in files.items() if p != "apply-plan.yaml"}
        # every object exactly once, with its kind and name
        assert sorted(s["file"] for s in steps) == sorted(objs)
        for s in steps:
            keys = {"name", "component", "tool", "action", "kind", "object", "namespace",
                    "file", "wait", "role"}
            assert (s.pop("tool"), s.pop("action")) == ("kubectl", "apply"), s
            assert s.pop("namespace") == ("" if s["kind"] == "Namespace"
                                          else control["namespace"]), s
            if s["wait"] != "none":
                assert s.pop("timeout") == control["rollout_timeout"], s
            keys -= {"tool", "action", "namespace"}
            if s["kind"] == "Job" and s["object"].startswith(f"{s['role']}-bootstrap-"):
                # first install only: skipped once the role's workload exists
                kind = spec_of[s["role"]].get("kind", "Deployment").lower()
                assert s.pop("unless_exists") == f"{kind}/{s['role']}", s
            assert set(s) == keys, s
            obj = objs[s["file"]]
            assert (s["kind"], s["object"]) == (obj["kind"], obj["metadata"]["name"])
            assert s["name"] == f"{obj['kind'].lower()}/{obj['metadata']['name']}"
            assert s["wait"] == {"Deployment": "rollout", "DaemonSet": "rollout",
                                 "Job": "complete"}.get(obj["kind"], "none")
        kinds = [s["kind"] for s in steps]
        assert kinds[:2] == ["Namespace", "Secret"]
        pvcs = [i for i, k in enumerate(kinds) if k == "PersistentVolumeClaim"]
        assert pvcs == list(range(2, 2 + len(pvcs)))
        index = {s["name"]: i for i, s in enumerate(steps)}
        workload = {r: index[f"{s.get('kind', 'Deployment').lower()}/{r}"]
                    for r, s in spec_of.items()}
        # infrastructure, then keystone, then the rest, by order
        by_order = sorted(spec_of, key=lambda r: (int(spec_of[r]["order"]), r))
        assert [workload[r] for r in by_order] == sorted(workload.values())
        assert max(workload[r] for r in spec_of if int(spec_of[r]["order"]) < 20) \
            < min(index[s["name"]] for s in steps
                  if s["role"] == "keystone" and s["kind"] != "PersistentVolumeClaim")
        group = {r: r.split("-")[0] for r in spec_of}
        for s in steps:
            if s["kind"] != "Job":
                continue
            role, i = s["role"], index[s["name"]]
            job = s["object"][len(role) + 1:].split("-")[0]
            if job == "contract":
                # after every workload of its service (nova: controller and compute)
                assert all(i > workload[r] for r in spec_of if group[r] == group[role]), s
            else:
                assert i < workload[role], s
                assert job in ("bootstrap", "expand", "migrate")
        jobs = [s["object"].split("-")[-2] for s in steps if s["role"] == "keystone"
                and s["kind"] == "Job"]
        assert jobs == ["bootstrap", "expand", "migrate", "contract"]


def test_every_mode_is_a_command_of_its_image(model):
    """The modes the containers and Jobs name are scripts of the image (images/README.md:
    the entrypoint runs /etc/stacksalt/commands/<mode>)."""
    params = next(iter(model.values()))
    missing = []
    for role, spec in roles(params).items():
        source = params["docker"]["build"]["image"][spec["image"]]["source"]
        commands = paths.repo_root() / "images" / source / "commands"
        modes = [c["command"] for c in spec["containers"].values()]
        for job in spec.get("jobs", {}).values():
            modes += [job] if isinstance(job, str) else job
        missing += [f"{role}: images/{source}/commands/{m}" for m in modes
                    if not (commands / m).is_file()]
    assert not missing, missing
