"""A salt-api (rest_cherrypy) client for the pipeline, as Mirantis' pipelines used pepper:
login with eauth, then lowstate calls; TLS verified against the cluster's CA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from stacksalt.errors import StacksaltError

TIMEOUT_S = 900
LOCAL_TIMEOUT_S = 600


class SaltAPIError(StacksaltError):
    pass


class SaltAPI:
    def __init__(self, url: str, user: str, password: str, ca: Path | None,
                 eauth: str = "pam") -> None:
        self.url, self.user, self.eauth = url.rstrip("/"), user, eauth
        self._password = password
        self.verify: str | bool = str(ca) if ca else True
        self.token: str | None = None

    def _post(self, path: str, body: Any, token: bool = True) -> Any:
        headers = {"Accept": "application/json"}
        if token:
            headers["X-Auth-Token"] = self.login()
        try:
            resp = requests.post(f"{self.url}{path}", json=body, headers=headers,
                                 verify=self.verify, timeout=TIMEOUT_S)
        except requests.exceptions.SSLError as exc:
            raise SaltAPIError(f"salt-api {self.url}: TLS verification failed ({exc}); give "
                               "the cluster CA with --ca-file") from None
        except requests.exceptions.RequestException as exc:
            raise SaltAPIError(f"salt-api {self.url} does not answer ({exc.__class__.__name__})"
                               "; is salt-api running on the master?") from None
        if resp.status_code in (401, 403) and not token:
            raise SaltAPIError(f"salt-api {self.url}: login of {self.user!r} refused "
                               f"({resp.status_code}): check its password")
        if resp.status_code in (401, 403):
            funs = [low.get("fun") for low in body] if isinstance(body, list) else body
            raise SaltAPIError(f"salt-api {self.url}: {self.user!r} may not call {funs} "
                               f"({resp.status_code}: not in its external_auth ACL)")
        if resp.status_code >= 400:
            raise SaltAPIError(f"salt-api {self.url}{path}: HTTP {resp.status_code}: "
                               f"{resp.text[:300]}")
        return resp.json()

    def login(self) -> str:
        if self.token is None:
            data = self._post("/login", {"username": self.user, "password": self._password,
                                         "eauth": self.eauth}, token=False)
            self.token = data["return"][0]["token"]
        return self.token

    def runner(self, fun: str, **kwargs: Any) -> Any:
        data = self._post("/", [{"client": "runner", "fun": fun, **kwargs}])
        out = data["return"][0]
        if isinstance(out, str) and ("Exception" in out or "Error" in out):
            raise SaltAPIError(f"salt-api runner {fun}: {out.strip().splitlines()[-1]}")
        return out

    def local(self, nodes: list[str], fun: str, arg: list[Any] | None = None,
              kwarg: dict[str, Any] | None = None) -> dict[str, Any]:
        low = {"client": "local", "tgt": nodes, "tgt_type": "list", "fun": fun,
               "arg": arg or [], "kwarg": kwarg or {}, "full_return": False,
               # a state run takes minutes: wait for it, not the master's 5 s default
               "timeout": LOCAL_TIMEOUT_S}
        return self._post("/", [low])["return"][0]
