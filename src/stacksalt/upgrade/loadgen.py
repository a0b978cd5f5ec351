"""The rehearsal's load generator: real OpenStack clients, every request logged.

It runs inside a container on the rehearsal's network (the from-release's
openstack-base image, which carries keystoneauth1), so it reaches every API the way a
client in the cluster does: through the Service names of the service catalog. It imports
only the standard library and keystoneauth1; it is not imported by stacksalt.

One thread per API, each cycling through its operations with LOAD_INTERVAL seconds
between requests (a modest, bounded rate: 5 threads, about 2 requests per second each):

- identity: issue a token (POST /v3/auth/tokens, a password login of the load user)
  and validate it (GET /v3/auth/tokens);
- image: list images;
- compute: list flavors, list servers, and a server create/delete cycle (create on the
  fake driver, show until ACTIVE, delete, show until gone; "server active" records the
  server's own outcome: a server not ACTIVE within 60 s is a failed request);
- network: list networks, create a port on the rehearsal's network and delete it;
- placement: list resource providers (as the operator user: an admin's API).

Each request is one JSON line on stdout: t (start, epoch seconds), api, op, status (0: no
response), ms, ok, error. A request is ok when it got the status its operation expects.
SIGTERM stops every thread after its current request; the last line is
{"done": true}.
"""

import json
import os
import signal
import sys
import threading
import time

from keystoneauth1 import exceptions, session
from keystoneauth1.identity import v3

STOP = threading.Event()
LOCK = threading.Lock()
NOVA = {"OpenStack-API-Version": "compute 2.37"}
PLACEMENT = {"OpenStack-API-Version": "placement 1.10"}


def emit(record):
    with LOCK:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


class Api:
    def __init__(self, sess, name, service_type):
        self.sess, self.name, self.service_type = sess, name, service_type

    def call(self, op, method, path, expect, json_body=None, headers=None, authenticated=True,
             endpoint=None):
        """One request; logged; the response (or None when it failed)."""
        started = time.time()
        t0 = time.monotonic()
        status, error, response = 0, None, None
        kwargs = {"raise_exc": False, "headers": headers or {}, "authenticated": authenticated}
        if endpoint is None:
            kwargs["endpoint_filter"] = {"service_type": self.service_type,
                                         "interface": "internal"}
        if json_body is not None:
            kwargs["json"] = json_body
        try:
            response = self.sess.request(endpoint + path if endpoint else path, method,
                                         **kwargs)
            status = response.status_code
            if status not in expect:
                error = response.text[:300]
        except exceptions.ClientException as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        ms = (time.monotonic() - t0) * 1000
        ok = status in expect
        emit({"t": started, "api": self.name, "op": op, "status": status, "ms": round(ms, 2),
              "ok": ok, "error": error})
        return response if ok else None


def password(env):
    """The load user's password: from the file OS_PASSWORD_FILE names (never env)."""
    with open(env["OS_PASSWORD_FILE"]) as f:
        return f.read().strip()


def pause(seconds):
    STOP.wait(seconds)


def identity(sess, env, interval):
    api = Api(sess, "keystone", "identity")
    # the Service's root: the token paths carry the version
    auth_url = env["OS_AUTH_URL"].rstrip("/").removesuffix("/v3")
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": env["OS_USERNAME"], "domain": {"name": "Default"},
        "password": password(env)}}},
        "scope": {"project": {"name": env["OS_PROJECT_NAME"], "domain": {"name": "Default"}}}}}
    while not STOP.is_set():
        made = api.call("token issue", "POST", "/v3/auth/tokens", (201,), json_body=body,
                        authenticated=False, endpoint=auth_url)
        pause(interval)
        if made is not None and not STOP.is_set():
            api.call("token validate", "GET", "/v3/auth/tokens", (200,),
                     headers={"X-Subject-Token": made.headers["X-Subject-Token"]},
                     endpoint=auth_url)
            pause(interval)


def image(sess, env, interval):
    api = Api(sess, "glance", "image")
    while not STOP.is_set():
        api.call("image list", "GET", "/v2/images", (200,))
        pause(interval)


def placement(sess, env, interval):
    # placement lists resource providers for admins only: the operator's own session
    auth = v3.Password(auth_url=env["OS_AUTH_URL"], username=env["OS_OPERATOR_USERNAME"],
                       password=password(env), project_name=env["OS_PROJECT_NAME"],
                       user_domain_name="Default", project_domain_name="Default")
    api = Api(session.Session(auth=auth, timeout=sess.timeout), "placement", "placement")
    while not STOP.is_set():
        api.call("resource providers", "GET", "/resource_providers", (200,),
                 headers=PLACEMENT)
        pause(interval)


def compute(sess, env, interval):
    api = Api(sess, "nova", "compute")
    cycle = 0
    while not STOP.is_set():
        api.call("flavor list", "GET", "/flavors", (200,), headers=NOVA)
        pause(interval)
        api.call("server list", "GET", "/servers", (200,), headers=NOVA)
        pause(interval)
        cycle += 1
        if cycle % 3 or STOP.is_set():
            continue
        made = api.call("server create", "POST", "/servers", (202,), headers=NOVA,
                        json_body={"server": {
                            "name": f"load-{int(time.time())}", "imageRef": env["LOAD_IMAGE"],
                            "flavorRef": env["LOAD_FLAVOR"], "networks": "none"}})
        if made is None:
            continue
        server = made.json()["server"]["id"]
        created, status = time.time(), "BUILD"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pause(interval)
            got = api.call("server show", "GET", f"/servers/{server}", (200,), headers=NOVA)
            if got is not None:
                status = got.json()["server"]["status"]
                if status in ("ACTIVE", "ERROR"):
                    break
        # the server's own outcome is a request of its own: ACTIVE, or a failure
        emit({"t": created, "api": "nova", "op": "server active",
              "status": 200 if status == "ACTIVE" else 0,
              "ms": round((time.time() - created) * 1000, 2), "ok": status == "ACTIVE",
              "error": None if status == "ACTIVE" else f"server {status} after "
                                                       f"{time.time() - created:.0f} s"})
        # deleted even after STOP: the cycle leaves nothing behind
        while api.call("server delete", "DELETE", f"/servers/{server}", (204, 404),
                       headers=NOVA) is None and time.monotonic() < deadline + 60:
            time.sleep(interval)
        while time.monotonic() < deadline + 120:
            time.sleep(interval)
            gone = api.call("server gone", "GET", f"/servers/{server}", (200, 404),
                            headers=NOVA)
            if gone is not None and gone.status_code == 404:
                break


def network(sess, env, interval):
    api = Api(sess, "neutron", "network")
    while not STOP.is_set():
        api.call("network list", "GET", "/v2.0/networks", (200,))
        pause(interval)
        made = api.call("port create", "POST", "/v2.0/ports", (201,),
                        json_body={"port": {"network_id": env["LOAD_NETWORK"],
                                            "name": "load-port"}})
        pause(interval)
        if made is not None:
            port = made.json()["port"]["id"]
            deadline = time.monotonic() + 60
            while api.call("port delete", "DELETE", f"/v2.0/ports/{port}", (204, 404)) is None \
                    and time.monotonic() < deadline:
                time.sleep(interval)
            pause(interval)


def main():
    env = os.environ
    interval = float(env.get("LOAD_INTERVAL", "0.5"))
    auth = v3.Password(auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"],
                       password=password(env), project_name=env["OS_PROJECT_NAME"],
                       user_domain_name="Default", project_domain_name="Default")
    sess = session.Session(auth=auth, timeout=float(env.get("LOAD_TIMEOUT", "30")))
    deadline = time.monotonic() + 300
    while True:  # the token the threads share, before the clock starts
        try:
            sess.get_token()
            break
        except exceptions.ClientException as exc:
            if time.monotonic() > deadline:
                sys.exit(f"no token from {env['OS_AUTH_URL']}: {exc}")
            time.sleep(2)
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    threads = [threading.Thread(target=f, args=(sess, env, interval), daemon=True)
               for f in (identity, image, compute, network, placement)]
    for thread in threads:
        thread.start()
    emit({"started": True})
    for thread in threads:
        thread.join()
    emit({"done": True})


if __name__ == "__main__":
    main()
