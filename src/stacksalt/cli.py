"""The `stacksalt` command: a thin dispatcher; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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


def _images_build(args: argparse.Namespace) -> int:
    from stacksalt.images import build

    return build.main(args.deployment, args.image, args.push, args.registry)


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
                     repo=args.repo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stacksalt",
        description="reclass model, Salt formulas and a Docker lab for OpenStack on Kubernetes",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="work with the reclass model").add_subparsers(
        dest="model_command", required=True
    )
    p = model.add_parser("check", help="render every node and report every error at once")
    p.add_argument("deployment", nargs="?", help="deployment (folder under reclass/nodes/)")
    p.add_argument("--inventory", type=Path, help="inventory base (default: ./reclass)")
    p.set_defaults(func=_model_check)

    lab = sub.add_parser("lab", help="the local Docker lab").add_subparsers(
        dest="lab_command", required=True
    )
    p = lab.add_parser("up", help="build images, start the nodes, converge with state.apply")
    p.add_argument("--deployment", default="lab", help=argparse.SUPPRESS)
    p.set_defaults(func=_lab_up)
    p = lab.add_parser("down", help="remove the containers and network the lab created")
    p.add_argument("--deployment", default="lab", help=argparse.SUPPRESS)
    p.add_argument("--images", action="store_true", help="also remove the lab's images")
    p.set_defaults(func=_lab_down)
    p = lab.add_parser("status", help="show the lab's nodes")
    p.add_argument("--deployment", default="lab", help=argparse.SUPPRESS)
    p.set_defaults(func=_lab_status)

    secrets = sub.add_parser("secrets", help="encrypted pillar secrets").add_subparsers(
        dest="secrets_command", required=True
    )
    p = secrets.add_parser(
        "generate", help="make a throwaway gpg key and random secrets for a test deployment"
    )
    p.add_argument("deployment", nargs="?", default="lab")
    p.set_defaults(func=_secrets_generate)

    images = sub.add_parser("images", help="the deployment's container images").add_subparsers(
        dest="images_command", required=True
    )
    p = images.add_parser("build", help="build the images the model defines (and push them)")
    p.add_argument("deployment", help="deployment (folder under reclass/nodes/)")
    p.add_argument("image", nargs="*", help="images to build (default: every enabled one)")
    p.add_argument("--push", action="store_true",
                   help="push to docker:build:registry once every image is built")
    p.add_argument("--registry", metavar="HOST:PORT",
                   help="tag (and push) for this registry instead of docker:build:registry")
    p.set_defaults(func=_images_build)
    p = images.add_parser(
        "freeze", help="make images/openstack-base/constraints/RELEASE.txt (pip freeze)"
    )
    p.add_argument("release", help="a release of images/openstack-base/releases.yml")
    p.set_defaults(func=_images_freeze)
    p = images.add_parser("scan", help="fail if a secret value of the deployment is in an image")
    p.add_argument("deployment")
    p.add_argument("image", nargs="*", help="images to scan (default: every enabled one)")
    p.set_defaults(func=_images_scan)
    p = images.add_parser(
        "demo", help="run keystone, glance-api and nova-controller from the built images in "
        "Docker, as their Deployments would, and prove them over HTTP"
    )
    p.add_argument("deployment", nargs="?", default="lab")
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
    p.add_argument("--deployment", default="lab", help="deployment (default: lab)")
    p.add_argument("--repo", type=Path, help="git repository of the revisions (default: this "
                   "checkout; the secrets always come from this checkout)")
    p.set_defaults(func=_upgrade_plan)

    pipeline = sub.add_parser("pipeline", help="the release pipeline on the build host")
    p = pipeline.add_subparsers(dest="pipeline_command", required=True).add_parser(
        "buildbot", help="Buildbot's master and local worker (stacksalt.pipeline.buildbot)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument("config", type=Path, metavar="CONFIG", help="the pipeline's YAML config")
    p.set_defaults(func=_pipeline_buildbot)
    return parser


def _pipeline_buildbot(args: argparse.Namespace) -> int:
    from stacksalt.pipeline import buildbot

    return buildbot.main(args.action, args.config)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
