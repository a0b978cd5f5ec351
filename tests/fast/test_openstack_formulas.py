"""The OpenStack formulas render each image's configuration from the image's pillar.

Every OpenStack image of the lab is rendered the way its Dockerfile's render stage does it
(`<formula>.<role>.config` with the image's pillar only and the formulas of the image's
build context as the only file root, both assembled by stacksalt.images), through Salt's
own file.get_managed (what file.managed renders with), and the files are checked: static
values of the model are there, every dynamic value and secret is a `${NAME}` placeholder
of the images contract that the role's Deployment provides (env / secret_env), and a
changed static parameter changes only its line.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from stacksalt import paths
from stacksalt.images import assemble, definitions

pytestmark = pytest.mark.fast

ROOT = paths.repo_root()
IMAGES = paths.images_dir()
# image -> (formula.role whose config state renders it, the files it must write)
OPENSTACK = {
    "keystone": ("keystone.server", ["/etc/keystone/keystone.conf", "/etc/keystone/logging.conf",
                                     "/etc/keystone/gunicorn.conf.py",
                                     "/etc/keystone/bootstrap.env"]),
    "glance-api": ("glance.api", ["/etc/glance/glance-api.conf",
                                  "/etc/glance/glance-api-paste.ini", "/etc/glance/logging.conf",
                                  "/etc/glance/gunicorn.conf.py",
                                  "/etc/glance/ks-register.ini"]),
    "placement-api": ("placement.api", ["/etc/placement/placement.conf",
                                        "/etc/placement/logging.conf",
                                        "/etc/placement/gunicorn.conf.py",
                                        "/etc/placement/ks-register.ini"]),
    "nova-controller": ("nova.controller", ["/etc/nova/nova.conf", "/etc/nova/api-paste.ini",
                                            "/etc/nova/logging.conf",
                                            "/etc/nova/gunicorn.conf.py",
                                            "/etc/nova/ks-register.ini",
                                            "/etc/nova/nova-manage.env"]),
    "nova-compute": ("nova.compute", ["/etc/nova/nova.conf", "/etc/nova/logging.conf"]),
    "neutron-server": ("neutron.server", ["/etc/neutron/neutron.conf",
                                          "/etc/neutron/plugins/ml2/ml2_conf.ini",
                                          "/etc/neutron/api-paste.ini",
                                          "/etc/neutron/logging.conf",
                                          "/etc/neutron/gunicorn.conf.py",
                                          "/etc/neutron/ks-register.ini"]),
}
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# images/README.md, "Placeholders": the names an image may use
CONTRACT = re.compile(
    r"^(DATABASE|RABBITMQ|MEMCACHED|KEYSTONE|GLANCE|PLACEMENT|NOVA|NEUTRON)_HOST$"
    r"|^(KEYSTONE|GLANCE|PLACEMENT|NOVA|NEUTRON)_(DATABASE|KEYSTONE)_PASSWORD$"
    r"|^(KEYSTONE_ADMIN_PASSWORD|RABBITMQ_OPENSTACK_PASSWORD|MARIADB_ROOT_PASSWORD"
    r"|RABBITMQ_ERLANG_COOKIE)$")

# One Salt process renders every job: per job a Caller with that job's pillar and file root,
# the state's file.managed chunks (state.show_low_sls) rendered by file.get_managed, as
# file.managed itself does.
# stdin: {config_dir, jobs: {job: {pillar_root, file_root, sls}}}; stdout: {job: files}.
WORKER = r"""
import copy, json, logging, sys
import salt.client, salt.config
req = json.load(sys.stdin)
base = salt.config.minion_config(req["config_dir"] + "/minion")
logging.getLogger("salt").setLevel(logging.CRITICAL)
out = {}
for job, spec in req["jobs"].items():
    opts = copy.deepcopy(base)
    opts["pillar_roots"] = {"base": [spec["pillar_root"]]}
    opts["file_roots"] = {"base": [spec["file_root"]]}
    opts["cachedir"] = spec["cachedir"]
    caller = salt.client.Caller(mopts=opts)
    chunks = caller.cmd("state.show_low_sls", spec["sls"])
    if not isinstance(chunks, list) or any(not isinstance(c, dict) for c in chunks):
        out[job] = {"error": chunks}
        continue
    files = {}
    for c in chunks:
        if (c["state"], c["fun"]) != ("file", "managed"):
            out[job] = {"error": f"unexpected state {c['state']}.{c['fun']} {c['__id__']}"}
            break
        sfn, _, comment = caller.cmd(
            "file.get_managed", c["name"], c.get("template"), c["source"], "", None,
            None, None, c.get("mode"), None, "base", c.get("context"), c.get("defaults"),
            False)
        if not sfn:
            out[job] = {"error": f"{c['__id__']}: {comment}"}
            break
        files[c["name"]] = {"id": c["__id__"], "mode": c.get("mode"),
                            "content": open(sfn, encoding="utf-8").read()}
    else:
        out[job] = {"files": files}
json.dump(out, sys.stdout, default=str)
"""


def render(jobs: dict[str, tuple[definitions.ImageDef, dict]]) -> dict[str, dict[str, str]]:
    """{job: (image, pillar)} -> {job: {path: content}}, all in one Salt process: the
    image's role config state with that pillar, and as the file root only the formulas
    the image's build context holds (so a formula it lacks fails the render)."""
    with tempfile.TemporaryDirectory(prefix="stacksalt-osf-") as tmp:
        tmpdir = Path(tmp)
        run = tmpdir / "run"
        conf = {
            "file_client": "local", "root_dir": str(run), "pki_dir": str(run / "pki"),
            "cachedir": str(run / "cache"), "sock_dir": str(run / "sock"),
            "log_file": str(run / "minion.log"), "id": "image-render",
        }
        (tmpdir / "etc").mkdir()
        (tmpdir / "etc" / "minion").write_text(yaml.safe_dump(conf))
        request: dict = {"config_dir": str(tmpdir / "etc"), "jobs": {}}
        for job, (image, pillar) in jobs.items():
            proot = tmpdir / "pillar" / job
            proot.mkdir(parents=True)
            (proot / "top.sls").write_text(assemble.PILLAR_TOP)
            (proot / "image.sls").write_text(yaml.safe_dump(pillar, sort_keys=True))
            froot = tmpdir / "formulas" / job
            for arcname, (data, _) in assemble.image_context(image).files.items():
                if arcname.startswith("formulas/"):
                    target = froot / arcname.removeprefix("formulas/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
            request["jobs"][job] = {"pillar_root": str(proot), "file_root": str(froot),
                                    "cachedir": str(run / "cache" / job),
                                    "sls": f"{OPENSTACK[image.name][0]}.config"}
        proc = subprocess.run([sys.executable, "-c", WORKER], input=json.dumps(request),
                              capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    errors = {j: r["error"] for j, r in result.items() if "error" in r}
    assert not errors, f"rendering failed: {errors}"
    return {j: {p: f["content"] for p, f in r["files"].items()} for j, r in result.items()}


@pytest.fixture(scope="module")
def lab_images():
    defs = definitions.load("lab")
    return {name: defs.images[name] for name in OPENSTACK}


@pytest.fixture(scope="module")
def lab_services(lab_deployment):
    """kubernetes:control:service of the lab (as every Kubernetes master has it)."""
    for node in lab_deployment.node_names:
        services = (lab_deployment.parameters(node).get("kubernetes", {}).get("control", {})
                    .get("service"))
        if services:
            return services
    raise AssertionError("no node of the lab has kubernetes:control:service")


@pytest.fixture(scope="module")
def rendered(lab_images):
    return render({name: (img, img.pillar) for name, img in lab_images.items()})


def test_image_pillar_is_the_role_subtree(lab_images):
    for name, img in lab_images.items():
        formula, role = OPENSTACK[name][0].split(".")
        assert img.pillar_keys == (f"{formula}:{role}",), name
        assert img.pillar[formula][role]["enabled"] is True


def test_every_image_renders_its_files(rendered):
    for name, (_, files) in OPENSTACK.items():
        assert sorted(rendered[name]) == sorted(files), name
        for path, content in rendered[name].items():
            assert "Rendered by the" in content, f"{name}: {path} has no provenance line"
            assert "{{" not in content and "{%" not in content, f"{name}: {path}: raw Jinja"


def _ini(content: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("", {})
    for line in content.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif "=" in line:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    return sections


def test_static_values_of_the_model(rendered, lab_images):
    # the overcommit is the compute's to report to placement; the controller has none
    compute = lab_images["nova-compute"].pillar["nova"]["compute"]
    conf = _ini(rendered["nova-compute"]["/etc/nova/nova.conf"])
    assert conf["DEFAULT"]["cpu_allocation_ratio"] == str(compute["cpu_allocation_ratio"]) \
        == "16.0"
    assert conf["DEFAULT"]["ram_allocation_ratio"] == "1.5"
    conf = _ini(rendered["nova-controller"]["/etc/nova/nova.conf"])
    assert "cpu_allocation_ratio" not in conf["DEFAULT"]
    assert conf["DEFAULT"]["osapi_compute_workers"] == "2"
    assert conf["scheduler"]["max_attempts"] == "3"
    assert conf["vnc"]["novncproxy_port"] == "6080"
    assert "workers = 2" in rendered["nova-controller"]["/etc/nova/gunicorn.conf.py"]

    ks = _ini(rendered["keystone"]["/etc/keystone/keystone.conf"])
    assert ks["token"] == {"provider": "fernet", "expiration": "3600"}
    assert ks["fernet_tokens"]["max_active_keys"] == "3"
    assert ks["DEFAULT"]["debug"] == "false"
    gunicorn = rendered["keystone"]["/etc/keystone/gunicorn.conf.py"]
    assert 'wsgi_app = "keystone.wsgi.api:application"' in gunicorn
    assert "workers = 2" in gunicorn and 'bind = ["0.0.0.0:5000"]' in gunicorn
    boot = rendered["keystone"]["/etc/keystone/bootstrap.env"]
    assert "OS_BOOTSTRAP_REGION_ID=RegionOne" in boot
    assert "OS_BOOTSTRAP_PUBLIC_URL=http://${KEYSTONE_HOST}:5000/v3" in boot

    glance = _ini(rendered["glance-api"]["/etc/glance/glance-api.conf"])
    assert glance["DEFAULT"]["image_size_cap"] == "1099511627776"
    assert glance["DEFAULT"]["workers"] == "2"
    assert glance["file"]["filesystem_store_datadir"] == "/var/lib/glance/images"

    placement = _ini(rendered["placement-api"]["/etc/placement/placement.conf"])
    assert placement["api"]["auth_strategy"] == "keystone"
    assert placement["placement_database"]["connection"] == (
        "mysql+pymysql://placement:${PLACEMENT_DATABASE_PASSWORD}@${DATABASE_HOST}"
        "/placement?charset=utf8")
    assert placement["keystone_authtoken"]["password"] == "${PLACEMENT_KEYSTONE_PASSWORD}"
    assert 'wsgi_app = "placement.wsgi.api:application"' in \
        rendered["placement-api"]["/etc/placement/gunicorn.conf.py"]

    neutron = _ini(rendered["neutron-server"]["/etc/neutron/neutron.conf"])
    assert neutron["DEFAULT"]["service_plugins"] == "router"
    assert neutron["DEFAULT"]["dhcp_agents_per_network"] == "2"
    ml2 = _ini(rendered["neutron-server"]["/etc/neutron/plugins/ml2/ml2_conf.ini"])["ml2"]
    assert ml2["type_drivers"] == "flat,vlan"
    assert ml2["tenant_network_types"] == "vlan"
    assert ml2["mechanism_drivers"] == "openvswitch"
    vlan = _ini(rendered["neutron-server"]["/etc/neutron/plugins/ml2/ml2_conf.ini"])
    assert vlan["ml2_type_vlan"]["network_vlan_ranges"] == "physnet1:1000:1999"

    compute = _ini(rendered["nova-compute"]["/etc/nova/nova.conf"])
    assert compute["libvirt"]["virt_type"] == "qemu"
    assert compute["DEFAULT"]["reserved_host_memory_mb"] == "512"
    for name in OPENSTACK:
        reg = rendered[name].get(f"/etc/{name.split('-')[0]}/ks-register.ini")
        if reg:
            assert _ini(reg)["auth"]["region"] == "RegionOne", name


# what differs between the services in the openstack formula's shared templates
SHARED = {  # image: (log file, API port and catalog path or None when it has no API)
    "keystone": ("/var/log/keystone/keystone.log", ("5000", None)),
    "glance-api": ("/var/log/glance/glance-api.log", ("9292", "")),
    "placement-api": ("/var/log/placement/placement-api.log", ("8778", "")),
    "nova-controller": ("/var/log/nova/nova.log", ("8774", "/v2.1")),
    "nova-compute": ("/var/log/nova/nova-compute.log", None),
    "neutron-server": ("/var/log/neutron/neutron-server.log", ("9696", "")),
}


def test_shared_templates_render_each_services_values(rendered):
    """logging.conf, gunicorn.conf.py and ks-register.ini are the openstack formula's
    templates: each image's copy carries its own service's values."""
    for name, (log_file, api) in SHARED.items():
        formula = OPENSTACK[name][0].split(".")[0]
        etc = f"/etc/{formula}"
        for path in (f"{etc}/logging.conf", f"{etc}/gunicorn.conf.py", f"{etc}/ks-register.ini"):
            if path in rendered[name]:
                assert f"# Rendered by the {formula} Salt formula" in rendered[name][path]
        logging = _ini(rendered[name][f"{etc}/logging.conf"])
        assert logging["handlers"]["keys"] == "stderr, file", name
        assert logging["handler_file"]["args"] == f"('{log_file}',)", name
        if api is None:
            assert f"{etc}/gunicorn.conf.py" not in rendered[name]
            continue
        port, path = api
        assert f'bind = ["0.0.0.0:{port}"]' in rendered[name][f"{etc}/gunicorn.conf.py"]
        if path is None:
            assert f"{etc}/ks-register.ini" not in rendered[name]
            continue
        reg = _ini(rendered[name][f"{etc}/ks-register.ini"])
        service = formula.upper()
        assert reg["user"]["password"] == f"${{{service}_KEYSTONE_PASSWORD}}", name
        assert reg["user"]["name"] == reg["service"]["name"] == formula, name
        # the service role: keystonemiddleware 13 refuses a service token without it
        assert reg["user"]["roles"] == "admin, service", name
        assert set(reg["endpoints"].values()) == {f"http://${{{service}_HOST}}:{port}{path}"}


def test_placeholders_are_the_contract_and_the_deployment_provides_them(
        rendered, lab_services):
    for name, files in rendered.items():
        used = {m for content in files.values() for m in PLACEHOLDER.findall(content)}
        outside = sorted(n for n in used if not CONTRACT.match(n))
        assert not outside, f"{name}: placeholders outside images/README.md: {outside}"
        service = lab_services[name]
        provided = set(service.get("env", {})) | set(service.get("secret_env", {}))
        unprovided = sorted(used - provided)
        assert not unprovided, (
            f"{name}: the image needs {unprovided}, which kubernetes:control:service:{name} "
            "gives neither in env nor in secret_env")
        assert "$" not in PLACEHOLDER.sub("", "".join(files.values())), \
            f"{name}: a '$' that is not a ${{NAME}} placeholder"


DYNAMIC_KEYS = {
    "connection": r"mysql\+pymysql://\w+:\$\{[A-Z]+_DATABASE_PASSWORD\}@\$\{DATABASE_HOST\}/\w+"
                  r"\?charset=utf8",
    "transport_url": r"rabbit://\w+:\$\{RABBITMQ_OPENSTACK_PASSWORD\}@\$\{RABBITMQ_HOST\}:5672/",
    "memcache_servers": r"\$\{MEMCACHED_HOST\}:11211",
    "memcached_servers": r"\$\{MEMCACHED_HOST\}:11211",
    "password": r"\$\{[A-Z]+_(KEYSTONE|ADMIN)_PASSWORD\}",
    "auth_url": r"http://\$\{KEYSTONE_HOST\}:5000(/v3)?",
    "www_authenticate_uri": r"http://\$\{KEYSTONE_HOST\}:5000",
}


def test_every_dynamic_value_and_secret_is_a_placeholder(rendered, lab_secrets):
    secrets = [v for v in lab_secrets.values() if len(v) >= 8]
    addresses = re.compile(r"\b(?!0\.0\.0\.0\b)\d{1,3}(\.\d{1,3}){3}\b")
    for name, files in rendered.items():
        for path, content in files.items():
            for secret in secrets:
                assert secret not in content, f"{name}: {path} holds a secret value"
            assert not addresses.search(content), f"{name}: {path} holds an address"
            assert ".lab.local" not in content, f"{name}: {path} holds a host name"
            for section, values in _ini(content).items():
                for key, value in values.items():
                    if key in DYNAMIC_KEYS:
                        assert re.fullmatch(DYNAMIC_KEYS[key], value), \
                            f"{name}: {path} [{section}] {key} = {value}"
                    for url in re.findall(r"https?://[^\s\"']+", value):
                        assert re.match(r"https?://\$\{[A-Z_]+_HOST\}", url), \
                            f"{name}: {path} [{section}] {key}: {url} is not a placeholder host"


@pytest.mark.parametrize("image,key,value,line", [
    ("nova-compute", ("nova", "compute", "cpu_allocation_ratio"), 4.0,
     "cpu_allocation_ratio = 4.0"),
    ("keystone", ("keystone", "server", "token_expiration"), 7200, "expiration = 7200"),
    ("keystone", ("keystone", "server", "workers"), 5, "workers = 5"),
    ("neutron-server", ("neutron", "server", "dhcp_agents_per_network"), 3,
     "dhcp_agents_per_network = 3"),
])
def test_a_changed_static_parameter_changes_only_its_line(
        rendered, lab_images, image, key, value, line):
    pillar = copy.deepcopy(lab_images[image].pillar)
    node = pillar
    for part in key[:-1]:
        node = node[part]
    assert node[key[-1]] != value
    node[key[-1]] = value
    changed = render({"changed": (lab_images[image], pillar)})["changed"]
    diffs = {}
    for path, content in changed.items():
        diff = [d for d in difflib.unified_diff(rendered[image][path].splitlines(),
                                                content.splitlines(), lineterm="", n=0)
                if d[:1] in "+-" and not d.startswith(("+++", "---"))]
        if diff:
            diffs[path] = diff
    assert len(diffs) == 1, diffs
    (diff,) = diffs.values()
    assert len(diff) == 2 and diff[1] == f"+{line}", diff


def _modes(service: dict) -> set[str]:
    modes = {c["command"] for c in service.get("containers", {}).values()}
    for job in service.get("jobs", {}).values():
        modes.update(job if isinstance(job, list) else [job])
    return modes


def test_every_mode_the_model_names_is_a_command(lab_services, lab_images):
    for name, img in lab_images.items():
        modes = _modes(lab_services[name])
        commands = IMAGES / img.source / "commands"
        for mode in sorted(modes):
            script = commands / mode
            assert script.is_file() and os.access(script, os.X_OK), \
                f"images/{img.source}/commands/{mode} (named by kubernetes:control:service:" \
                f"{name}) is missing or not executable"


def test_ks_register_is_the_shared_tool_in_every_image_that_runs_it(lab_services, lab_images):
    tool = IMAGES / "openstack-tools" / "ks-register"
    for name, img in lab_images.items():
        script = IMAGES / img.source / "commands" / "ks_register"
        if "ks_register" in _modes(lab_services[name]):
            assert script.is_symlink() and script.resolve() == tool.resolve(), script
    # valid Python that defines what the images run
    proc = subprocess.run([sys.executable, "-m", "py_compile", str(tool)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    ruff = Path(sys.executable).parent / "ruff"
    with tempfile.TemporaryDirectory() as tmp:
        copy_ = Path(tmp) / "ks_register.py"
        shutil.copy(tool, copy_)
        proc = subprocess.run([str(ruff), "check", "--config", str(ROOT / "pyproject.toml"),
                               str(copy_)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_command_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: ci/setup installs it"
    scripts = [p for name in OPENSTACK for p in sorted((IMAGES / name / "commands").iterdir())
               if p.read_text().startswith("#!/usr/bin/env bash")]
    assert len(scripts) >= 20
    proc = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_dockerfile_renders_its_role_and_ships_the_templates(lab_images):
    for name, img in lab_images.items():
        sls, files = OPENSTACK[name]
        dockerfile = (IMAGES / img.source / "Dockerfile").read_text()
        assert f"state.apply {sls}.config" in dockerfile, name
        assert "FROM ${SALT_IMAGE} AS render" in dockerfile
        assert "FROM ${OPENSTACK_BASE}" in dockerfile
        config_dir = str(Path(files[0]).parent)
        assert f"COPY --from=render {config_dir}/ /etc/stacksalt/templates{config_dir}/" \
            in dockerfile, name
        assert "ENTRYPOINT [\"/usr/local/bin/stacksalt-entrypoint\"]" in dockerfile


def test_openstack_formulas_are_image_only(lab_deployment):
    """No node applies them: they exist to render configuration into images."""
    for node, info in lab_deployment.rendered.items():
        apps = {a.split(".")[0] for a in info.get("applications", [])}
        assert not apps & {"keystone", "glance", "placement", "nova", "neutron"}, node
