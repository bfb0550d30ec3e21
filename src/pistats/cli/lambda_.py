"""``pistats lambda package --out DIR``: the ingest's Lambda zip and its SAM template."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from pistats.deploy.lambda_package import HANDLER, PLATFORM, PYTHON_VERSION, TEMPLATE_NAME, ZIP_NAME

    parser = subparsers.add_parser(
        "lambda",
        help="build the ingest's AWS Lambda deployment zip and SAM template",
        description=(
            f"Build {ZIP_NAME} (handler {HANDLER}: the pistats modules it imports, and its dependencies "
            f"at the versions requirements.lock pins, as {PLATFORM} wheels for CPython {PYTHON_VERSION}; "
            f"boto3 is the runtime's) and copy deploy/{TEMPLATE_NAME} beside it. pip fetches the wheels "
            "(network). Deploying is `sam deploy --guided --template-file DIR/template.yaml`: see docs/ingest.md."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    package = actions.add_parser("package", help="write the zip and the template into a folder")
    package.add_argument("--out", required=True, type=Path, metavar="DIR",
                         help=f"folder for {ZIP_NAME} and {TEMPLATE_NAME} (created if missing)")
    package.add_argument("--lock", type=Path, metavar="FILE",
                         help="the pins (default: the checkout's requirements.lock)")
    package.add_argument("--template", type=Path, metavar="FILE",
                         help=f"the SAM template (default: the checkout's deploy/{TEMPLATE_NAME})")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pistats.deploy.lambda_package import build

    built = build(args.out, lock=args.lock, template=args.template)
    print(f"wrote {built.summary()}")
    print(f"deploy with: sam deploy --guided --template-file {built.template_path}")
    return 0
