"""The `stacksalt` command: a thin dispatcher; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stacksalt import paths
from stacksalt.errors import StacksaltError


def _init(args: argparse.Namespace) -> int:
    from stacksalt import init

    return init.main(args.name, args.source, args.directory, args.product)


def _model_check(args: argparse.Namespace) -> int:
    from stacksalt.model import check

    return check.main(deployment=args.deployment, inventory=args.inventory)


def _lab_up(args: argparse.Namespace) -> int:
    from stacksalt.lab import lab

    return lab.up(deployment=args.deployment)


def _lab_down(args: argparse.Namespace) -> int:
    from stacksalt.lab import lab

    return lab.down(deployment=args.deployment, remove_images=args.images)


def _lab_status(args: argparse.Namespace) -> int:
    from stacksalt.lab import lab

    return lab.status(deployment=args.deployment)


def _secrets_generate(args: argparse.Namespace) -> int:
    from stacksalt import secrets

    return secrets.main_generate(deployment=args.deployment)


def _secrets_import_key(args: argparse.Namespace) -> int:
    from stacksalt import secrets

    return secrets.main_import_key(args.deployment, args.file, replace=args.replace)


def _secrets_set(args: argparse.Namespace) -> int:
    from stacksalt import secrets

    return secrets.main_set(args.deployment, args.name, force=args.force)


def _secrets_rotate(args: argparse.Namespace) -> int:
    from stacksalt import secrets

    return secrets.main_rotate(args.deployment, args.name, from_stdin=args.stdin,
                               force=args.force)


def _secrets_list(args: argparse.Namespace) -> int:
    from stacksalt import secrets

    return secrets.main_list(args.deployment)


def _secrets_check(args: argparse.Namespace) -> int:
    from stacksalt import secrets

    return secrets.main_check(args.deployment)


def _images_build(args: argparse.Namespace) -> int:
    from stacksalt.images import build

    return build.main(args.deployment, args.image, args.push, args.registry,
                      changed_only=args.changed_only)


def _images_plan(args: argparse.Namespace) -> int:
    from stacksalt.images import build

    return build.main_plan(args.deployment, args.image, as_json=args.json,
                           registry=args.registry, plain_http=args.plain_http, ca=args.ca_file)


def _images_freeze(args: argparse.Namespace) -> int:
    from stacksalt.images import build

    return build.main_freeze(args.release)


def _images_demo(args: argparse.Namespace) -> int:
    from stacksalt.images import demo

    return demo.main(args.deployment, keep=args.keep, build=not args.no_build)


def _images_scan(args: argparse.Namespace) -> int:
    from stacksalt.images import scan

    return scan.main(args.deployment, args.image)


def _upgrade_plan(args: argparse.Namespace) -> int:
    from stacksalt.upgrade import plan

    return plan.main(deployment=args.deployment, from_rev=args.from_rev, to_rev=args.to_rev,
                     repo=args.repo, allow_downgrade=args.allow_downgrade)


def _upgrade_rehearse(args: argparse.Namespace) -> int:
    from stacksalt.upgrade import rehearse

    return rehearse.main(args.deployment, args.to, args.report, broken=args.break_shape,
                         keep=args.keep)


def _ci_run(args: argparse.Namespace) -> int:
    from stacksalt.pipeline import cli as pipeline_cli

    return pipeline_cli.main(args.deployment, args.from_rev, args.to_rev, args.report,
                             args.ca_file, args.master_url, args.api_user)


def _deployment_option(p: argparse.ArgumentParser) -> None:
    """--deployment: defaults to, and must equal, the repository's (see _activate)."""
    p.add_argument("--deployment", help="deployment (default: the repository's)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stacksalt",
        description="reclass model, Salt formulas and a Docker lab for OpenStack on Kubernetes",
    )
    parser.add_argument("-C", dest="directory", type=Path, metavar="DIR",
                        help="work on the deployment repository at DIR (default: the one "
                        "holding the current directory)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="make a new deployment repository from an example")
    p.add_argument("name", metavar="NAME", help="the deployment's name")
    p.add_argument("directory", nargs="?", type=Path, metavar="DIR",
                   help="where (default: ./NAME)")
    p.add_argument("--from", dest="source", default="lab",
                   help="the example to start from (default: lab)")
    p.add_argument("--product", metavar="URL",
                   help="git URL of stacksalt to pin as the submodule (default: this "
                   "installation's checkout, at its current commit)")
    p.set_defaults(func=_init, needs_repo=False)

    model = sub.add_parser("model", help="work with the reclass model").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("check", help="render every node and report every error at once")
    p.add_argument("deployment", nargs="?", help="the repository's deployment")
    p.add_argument("--inventory", type=Path, help="check this inventory base instead of the "
                   "deployment repository's reclass/ (no repository needed)")
    p.set_defaults(func=_model_check)

    lab = sub.add_parser("lab", help="the local Docker lab").add_subparsers(
        dest="lab_command", required=True
    )
    p = lab.add_parser("up", help="build images, start the nodes, converge with state.apply")
    p.add_argument("--deployment", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_lab_up)
    p = lab.add_parser("down", help="remove the containers and network the lab created")
    p.add_argument("--deployment", default=None, help=argparse.SUPPRESS)
    p.add_argument("--images", action="store_true", help="also remove the lab's images")
    p.set_defaults(func=_lab_down)
    p = lab.add_parser("status", help="show the lab's nodes")
    p.add_argument("--deployment", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_lab_status)

    secrets = sub.add_parser("secrets", help="encrypted pillar secrets").add_subparsers(
        dest="secrets_command", required=True
    )
    p = secrets.add_parser(
        "generate", help="make a throwaway gpg key and random secrets for a test deployment"
    )
    p.add_argument("deployment", nargs="?", help="(default: the repository's)")
    p.set_defaults(func=_secrets_generate)
    p = secrets.add_parser(
        "import-key", help="import the salt master's public key (gpg --export --armor on the "
        "master) and pin its fingerprint"
    )
    p.add_argument("file", nargs="?", metavar="FILE|-", help="armored public key (default: stdin)")
    _deployment_option(p)
    p.add_argument("--replace", action="store_true", help="pin this key instead of the pinned one")
    p.set_defaults(func=_secrets_import_key)
    p = secrets.add_parser(
        "set", help="encrypt the value on stdin to the pinned master key as secrets:NAME"
    )
    p.add_argument("name", metavar="NAME", help="secret name (the value is read from stdin)")
    _deployment_option(p)
    p.add_argument("--force", action="store_true", help="also a name no node references")
    p.set_defaults(func=_secrets_set)
    p = secrets.add_parser(
        "rotate", help="a new generated value for secrets:NAME (prints only the name)"
    )
    p.add_argument("name", metavar="NAME")
    _deployment_option(p)
    p.add_argument("--stdin", action="store_true", help="read the new value from stdin")
    p.add_argument("--force", action="store_true", help="also a name no node references")
    p.set_defaults(func=_secrets_rotate)
    p = secrets.add_parser("list", help="secret names, who references them, which are missing")
    _deployment_option(p)
    p.set_defaults(func=_secrets_list)
    p = secrets.add_parser(
        "check", help="exit 1 if a secret is missing, does not parse or is not encrypted to the "
        "pinned master key (a throwaway key's are also decrypted)"
    )
    _deployment_option(p)
    p.set_defaults(func=_secrets_check)

    images = sub.add_parser("images", help="the deployment's container images").add_subparsers(
        dest="images_command", required=True
    )
    p = images.add_parser("build", help="build the images the model defines (and push them)")
    p.add_argument("deployment", help="the repository's deployment")
    p.add_argument("image", nargs="*", help="images to build (default: every enabled one)")
    p.add_argument("--push", action="store_true",
                   help="push to docker:build:registry once every image is built")
    p.add_argument("--registry", metavar="HOST:PORT",
                   help="tag (and push) for this registry instead of docker:build:registry")
    p.add_argument("--changed-only", action="store_true",
                   help="build (and push) only the images whose inputs digest differs from "
                        "the registry's tag (see 'stacksalt images plan')")
    p.set_defaults(func=_images_build)
    p = images.add_parser(
        "plan", help="which images a build must make: inputs digests against the registry's tags"
    )
    p.add_argument("deployment", help="the repository's deployment")
    p.add_argument("image", nargs="*", help="images to plan (default: every enabled one)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--registry", metavar="HOST:PORT",
                   help="ask this registry instead of docker:build:registry")
    p.add_argument("--plain-http", action="store_true",
                   help="talk HTTP, not HTTPS, to the registry (a local test registry)")
    p.add_argument("--ca-file", type=Path, metavar="PEM",
                   help="the registry's CA (default: /etc/docker/certs.d/HOST:PORT/ca.crt "
                        "if present, else the system's CAs)")
    p.set_defaults(func=_images_plan)
    p = images.add_parser(
        "freeze", help="make images/openstack-base/constraints/RELEASE.txt (pip freeze)"
    )
    p.add_argument("release", help="a release of images/openstack-base/releases.yml")
    p.set_defaults(func=_images_freeze, needs_repo=False)
    p = images.add_parser("scan", help="fail if a secret value of the deployment is in an image")
    p.add_argument("deployment")
    p.add_argument("image", nargs="*", help="images to scan (default: every enabled one)")
    p.set_defaults(func=_images_scan)
    p = images.add_parser(
        "demo", help="run keystone, glance-api and nova-controller from the built images in "
        "Docker, as their Deployments would, and prove them over HTTP"
    )
    p.add_argument("deployment", nargs="?", help="(default: the repository's)")
    p.add_argument("--keep", action="store_true", help="leave the containers running")
    p.add_argument("--no-build", action="store_true", help="use the images as they are")
    p.set_defaults(func=_images_demo)

    upgrade = sub.add_parser("upgrade", help="OpenStack upgrades").add_subparsers(
        dest="upgrade_command", required=True
    )
    p = upgrade.add_parser(
        "plan", help="render the Kubernetes objects at two git revisions and show what changes"
    )
    p.add_argument("from_rev", metavar="FROM_REV", help="git revision before the upgrade")
    p.add_argument("to_rev", metavar="TO_REV", help="git revision after the upgrade")
    _deployment_option(p)
    p.add_argument("--repo", type=Path, help="git repository of the revisions (default: the "
                   "deployment repository; the secrets always come from the deployment "
                   "repository)")
    p.add_argument("--allow-downgrade", action="store_true", help="plan a move to an older "
                   "OpenStack series too (refused by default: the newer release's contract "
                   "Jobs may have removed what the older one uses)")
    p.set_defaults(func=_upgrade_plan)
    p = upgrade.add_parser(
        "rehearse", help="run the release the model runs on Docker from its objects, make "
        "resources, then apply RELEASE's plan under API load and count every failed request"
    )
    p.add_argument("deployment", nargs="?", help="(default: the repository's)")
    p.add_argument("--to", required=True, metavar="RELEASE", help="the release to upgrade to "
                   "(a newer one of images/openstack-base/releases.yml)")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the report as JSON "
                   "here and its picture beside it (.png)")
    p.add_argument("--break", dest="break_shape", choices=["recreate"], help="negative "
                   "control: every OpenStack Deployment rolls with strategy Recreate")
    p.add_argument("--keep", action="store_true", help="leave the containers running")
    p.set_defaults(func=_upgrade_rehearse)
    ci = sub.add_parser("ci", help="the release pipeline").add_subparsers(
        dest="ci_command", required=True
    )
    p = ci.add_parser(
        "run", help="model check, image plan, build/scan/push, move the master, dry run, "
        "report: what a push to the deployment repository triggers"
    )
    p.add_argument("--from", dest="from_rev", required=True, metavar="REV",
                   help="the revision the master serves now (40 zeros: none)")
    p.add_argument("--to", dest="to_rev", required=True, metavar="REV",
                   help="the pushed revision (checked out here)")
    p.add_argument("--report", type=Path, metavar="FILE", help="also write the JSON report here")
    p.add_argument("--ca-file", type=Path, metavar="PEM",
                   help="CA of the master's salt-api and the registry (default: system CAs)")
    p.add_argument("--master-url", metavar="URL",
                   help="salt-api address (default: from the model's salt:api)")
    p.add_argument("--api-user", metavar="USER",
                   help="salt-api user (default: from the model's salt:api); with "
                   "--master-url, a model that does not render still gets its report kept")
    p.add_argument("--deployment", help=argparse.SUPPRESS)
    p.set_defaults(func=_ci_run)
    p = ci.add_parser("buildbot", help="the build host's Buildbot master and local worker "
                      "(stacksalt.pipeline.buildbot)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("config", type=Path, metavar="CONFIG", help="the pipeline's YAML config")
    p.set_defaults(func=_pipeline_buildbot, needs_repo=False)
    return parser


def _pipeline_buildbot(args: argparse.Namespace) -> int:
    from stacksalt.pipeline import buildbot

    return buildbot.main(args.action, args.config)


# The commands' deployment arguments: each defaults to, and must equal, the repository's.
_DEPLOYMENT_ARGS = ("deployment",)


def _activate(args: argparse.Namespace) -> None:
    """Find the deployment repository (cwd or -C) and make every path refer to it."""
    from stacksalt.repo import DeploymentRepo

    if not getattr(args, "needs_repo", True):
        return
    if getattr(args, "inventory", None) is not None:  # model check --inventory DIR
        return
    repo = DeploymentRepo.find(args.directory or Path.cwd())
    paths.activate(repo.root)
    for key in _DEPLOYMENT_ARGS:
        if hasattr(args, key):
            setattr(args, key, repo.check_deployment(getattr(args, key)))


# failures of what the lab and the pipeline talk to (the Docker engine, HTTP services),
# not of stacksalt: one line, with where to look
EXTERNAL = {"docker": "the Docker engine answered so (`stacksalt lab status`, "
                      "/var/log/stacksalt-dockerd.log)",
            "requests": "a service did not answer as expected (`stacksalt lab status`)"}


def external_error(exc: BaseException) -> str | None:
    """The one line for an error of the Docker SDK or of requests, None for any other."""
    package = type(exc).__module__.split(".")[0]
    if package not in EXTERNAL:
        return None
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}: {EXTERNAL[package]}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = paths.active()
    try:
        _activate(args)
        return int(args.func(args) or 0)
    except StacksaltError as exc:
        print(f"stacksalt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`stacksalt secrets list | head`): as the Python docs advise,
        # point stdout at devnull so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # last: the clauses above come first
        line = external_error(exc)
        if line is None:
            raise  # a bug: the traceback is what to report
        print(f"stacksalt: {line}", file=sys.stderr)
        return 1
    finally:
        paths.activate(previous)


if __name__ == "__main__":
    sys.exit(main())
