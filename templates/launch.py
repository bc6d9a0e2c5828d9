"""Flex Template entry point: the file `FLEX_TEMPLATE_PYTHON_PY_FILE` names in templates/Dockerfile.

The Dataflow launcher runs `python templates/launch.py --runner=DataflowRunner ... --source=... --connectors=...`
(every template parameter becomes a `--name=value` flag). This file only hands those flags to the job's own entry
point, `pipeline.main.main()`, which validates them, builds the graph, submits the job and returns without waiting
(a Flex Template launcher must not block on a streaming job).

One addition: the image bakes its own name into `CURRENTS_SDK_CONTAINER_IMAGE` (build argument
`SDK_CONTAINER_IMAGE`). When that is set and the launch did not name an SDK image, `--sdk_container_image` defaults
to it, so the workers run the same image as the launcher even when someone starts the template from the console and
forgets the `sdk_container_image` parameter (without it the workers would run the stock Beam image, which does not
have this package installed). Outside the image the variable is unset and nothing changes:
`python templates/launch.py --help` lists every option, as `python -m pipeline --help` does.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, Optional, Sequence

IMAGE_ENV = "CURRENTS_SDK_CONTAINER_IMAGE"
_IMAGE_FLAGS = ("--sdk_container_image", "--worker_harness_container_image")


def with_default_image(argv: Sequence[str], environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """`argv`, plus `--sdk_container_image=$CURRENTS_SDK_CONTAINER_IMAGE` when that is set and no image is named."""
    args = list(argv)
    image = (os.environ if environ is None else environ).get(IMAGE_ENV, "").strip()
    named = any(arg == flag or arg.startswith(flag + "=") for arg in args for flag in _IMAGE_FLAGS)
    if image and not named and "--help" not in args and "-h" not in args:
        args.append(f"--sdk_container_image={image}")
    return args


def _import_main():  # noqa: ANN202 - the job's entry point
    try:
        from pipeline.main import main
    except ModuleNotFoundError as exc:
        if exc.name != "pipeline":
            raise
        # Not installed (a bare checkout): the package sits next to this folder.
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from pipeline.main import main
    return main


if __name__ == "__main__":
    _import_main()(with_default_image(sys.argv[1:]))
