"""The Dataflow Flex Template (templates/): metadata.json, Dockerfile, launch.py and template.mk, checked by reading.

Docker and Google Cloud are out of reach here, so these tests hold the files to what the job really accepts: every
parameter is an option of the job, every regex takes the documented examples (and the job's own parser agrees),
the image's launcher entry file exists and prints every parameter in `--help`, and the make targets compose the
gcloud commands the README shows.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import pipeline.options  # noqa: F401 - registers CurrentsOptions with PipelineOptions
from pipeline.options import EVENT_TIME_MODES, CurrentsOptions
from pipeline.sources import parse_source

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
METADATA = json.loads((TEMPLATES / "metadata.json").read_text(encoding="utf-8"))
PARAMS = {p["name"]: p for p in METADATA["parameters"]}

# Job options that are no template parameter, and why.
NOT_PARAMETERS = {
    "metrics_out": "written when a local run ends; on Dataflow the launcher submits and returns, so it never is",
}

# Example values of README.md and templates/README.md (and the design's source forms): every one must pass.
EXAMPLES = {
    "source": [
        "pubsub:projects/acme-data/subscriptions/currents-events",
        "pubsub:projects/acme-data/topics/currents-events",
        "pubsub:projects/example.com:acme-data/subscriptions/currents-events",
        "kafka:broker-1:9092/currents-events",
        "kafka:broker-1:9092,broker-2:9092,broker-3:9092/currents.events",
        "kafka:[::1]:9092/events",
        "file:events/*.jsonl.gz",
        "file:gs://acme-currents-archive/2024/*.jsonl.gz",
        "deadletter:out/dead-letter/reason=write_failed/**/*.jsonl",
        "deadletter:gs://acme-currents-dead-letters/prod/reason=expired/**/*.jsonl",
        "generate:count=30000,seed=7,invalid=25,oversize=5",
        "generate:count=100000,rate=500",
        "generate:count=1000000,rate=2.5,seed=1",
        "generate:seed=3,count=10",
        "generate:count=2000,seed=1",
        "kafka:kafka-1:9092,kafka-2:9092/currents-events",
    ],
    "connectors": [
        "gs://acme-currents-config/connectors.yaml",
        "gs://acme-currents-config/prod/connectors.json",
        "s3://acme-currents-config/connectors.yaml",
        "azfs://acmeaccount/config/connectors.yaml",
        '{"connectors": [{"id": "lake", "type": "gcs", "bucket": "acme-currents-lake"}]}',
        '{"connectors": [{"id": "local", "type": "filesystem", "path": "out/portable"}]}',
    ],
    "dead_letter": [
        "gs://acme-currents-dead-letters/prod",
        "gs://acme-currents-dead-letters",
        "s3://acme-currents/dead-letter/",
        "azfs://acmeaccount/currents/dead-letter",
        "s3://acme-currents/dead-letter",
    ],
    "max_event_bytes": ["921600", "1000", "500000"],
    "bounded_hold_minutes": ["5", "0.5", "90", "1440"],
    "event_time": ["publish", "field"],
    "pubsub_timestamp_attribute": ["ts", "event_time", "published-at"],
    "pubsub_id_label": ["event_id", "id", "message.id"],
    "kafka_consumer_config": ['{"group.id": "currents"}',
                              '{"group.id": "currents", "auto.offset.reset": "earliest"}',
                              '{"group.id": "beam-currents", "auto.offset.reset": "earliest"}'],
    "kafka_expansion_service": ["localhost:8097", "expansion.internal:8097", "[::1]:8097",
                                "/opt/beam/beam-sdks-java-io-expansion-service-2.77.0.jar"],
}

# README.md values that only make sense on a local run: the template refuses them on purpose (on Dataflow a local
# path is the launcher's or a worker's disk: the config would not be found, the dead letters would be lost).
LOCAL_ONLY = {
    "connectors": ["examples/demo.yaml", "examples/production.yaml"],
    "dead_letter": ["out/dead-letter", "./out/dead-letter"],
}

GARBAGE = {
    "source": ["ftp://x", "pubsub:my-subscription", "pubsub:projects/acme/queues/x", "kafka:events",
               "kafka:broker/events", "generate:rate=5", "generate:count=lots", "file:", "", "events.jsonl"],
    "connectors": ["", "connectors.yaml", "ftp://host/c.yaml", "gs://bucket-only", "[1, 2]", "yes"],
    "dead_letter": ["", "ftp://host/dl", "gs://", "gs:// spaced", "hdfs://nn/dl"],
    "max_event_bytes": ["lots", "", "0", "-5", "9.5", "1e6", "900 KiB"],
    "bounded_hold_minutes": ["", "-1", "five", "1e3", "5 min"],
    "event_time": ["sometimes", "", "Publish", "publish ", "event"],
    "pubsub_timestamp_attribute": ["", "two words", "a,b"],
    "pubsub_id_label": ["", "two words"],
    "kafka_consumer_config": ["group.id=currents", "", "[1]"],
    "kafka_expansion_service": ["", "localhost", "http://localhost:8097", "expansion service"],
}


def _matches(name: str, value: str) -> bool:
    return all(re.fullmatch(regex, value) for regex in PARAMS[name]["regexes"])


def _dests(*option_classes: type) -> set[str]:
    parser = argparse.ArgumentParser()
    for cls in option_classes:
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own way of declaring options
    return {action.dest for action in parser._actions if action.dest != "help"}  # noqa: SLF001


# --- metadata.json ---------------------------------------------------------------------------------------------

def test_metadata_has_the_documented_keys() -> None:
    assert set(METADATA) <= {"name", "description", "parameters", "streaming", "supportsAtLeastOnce",
                             "supportsExactlyOnce", "defaultStreamingMode"}
    assert METADATA["name"] and METADATA["description"]
    assert METADATA["parameters"], "no parameters"
    allowed = {"name", "label", "helpText", "isOptional", "regexes", "paramType", "customMetadata"}
    for param in METADATA["parameters"]:
        assert set(param) <= allowed, f"{param['name']}: unknown keys {set(param) - allowed}"
        for key in ("name", "label", "helpText"):
            assert isinstance(param[key], str) and param[key].strip(), f"{param.get('name')}: empty {key}"
        assert isinstance(param["isOptional"], bool)
        assert "Example: " in param["helpText"], f"{param['name']}: helpText has no example"
        assert param.get("paramType", "TEXT") == "TEXT"
        assert isinstance(param["regexes"], list) and len(param["regexes"]) == 1, f"{param['name']}: one regex"
    assert len(PARAMS) == len(METADATA["parameters"]), "duplicate parameter names"


def test_every_parameter_is_an_option_the_job_accepts() -> None:
    accepted = _dests(*PipelineOptions.__subclasses__())
    assert set(PARAMS) <= accepted, f"not job options: {set(PARAMS) - accepted}"


def test_every_job_option_but_metrics_out_is_a_parameter() -> None:
    job_options = _dests(CurrentsOptions)
    assert set(NOT_PARAMETERS) <= job_options
    assert job_options - set(NOT_PARAMETERS) == set(PARAMS)


def test_required_parameters() -> None:
    required = {name for name, p in PARAMS.items() if not p["isOptional"]}
    # dead_letter too: the job's default (./out/dead-letter) is a worker's local disk on Dataflow.
    assert required == {"source", "connectors", "dead_letter"}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_regex_compiles_and_is_anchored(name: str) -> None:
    for regex in PARAMS[name]["regexes"]:
        re.compile(regex)
        assert regex.startswith("^") and regex.endswith("$"), f"{name}: unanchored regex"
        assert "(?" not in regex, f"{name}: lookarounds/inline flags are not portable to Dataflow's regex engine"


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_regex_accepts_every_example(name: str) -> None:
    assert EXAMPLES.get(name), f"{name}: no examples listed"
    rejected = [value for value in EXAMPLES[name] if not _matches(name, value)]
    assert not rejected, f"{name} rejects documented examples: {rejected}"
    example = PARAMS[name]["helpText"].split("Example: ", 1)[1]
    assert _matches(name, example), f"{name} rejects its own helpText example {example!r}"


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_regex_rejects_garbage(name: str) -> None:
    accepted = [value for value in GARBAGE[name] if _matches(name, value)]
    assert not accepted, f"{name} accepts garbage: {accepted}"


@pytest.mark.parametrize("name", sorted(LOCAL_ONLY))
def test_local_paths_are_refused_on_dataflow(name: str) -> None:
    accepted = [value for value in LOCAL_ONLY[name] if _matches(name, value)]
    assert not accepted, f"{name} accepts local paths: {accepted}"


def _template_readme_values() -> list[tuple[str, str]]:
    """(parameter, value) of every template value templates/README.md shows: make variables and --parameters."""
    text = (TEMPLATES / "README.md").read_text(encoding="utf-8")
    found = [(name.lower(), value) for name, value in
             re.findall(r"\b(SOURCE|CONNECTORS|DEAD_LETTER)=([^\s\\`]+)", text)]
    for items in re.findall(r"--parameters='\^~\^([^']*)'", text) + re.findall(r"PARAMETERS='([^']*)'", text):
        found += [tuple(item.split("=", 1)) for item in items.split("~")]
    return [(name, value) for name, value in found if value != "..." and name != "sdk_container_image"]


def test_regex_accepts_the_template_readme_values() -> None:
    values = _template_readme_values()
    assert {name for name, _ in values} >= {"source", "connectors", "dead_letter", "max_event_bytes", "event_time"}
    rejected = [(name, value) for name, value in values if not _matches(name, value)]
    assert not rejected, f"templates/README.md shows values the template refuses: {rejected}"


def test_source_regex_agrees_with_the_job() -> None:
    for value in EXAMPLES["source"]:
        parse_source(value)  # raises when the job would refuse what the template lets through
    for value in GARBAGE["source"]:
        with pytest.raises(ValueError):
            parse_source(value)


def test_event_time_regex_is_exactly_the_job_modes() -> None:
    assert set(EXAMPLES["event_time"]) == set(EVENT_TIME_MODES)


def test_inline_json_examples_are_json_objects() -> None:
    for name in ("connectors", "kafka_consumer_config"):
        for value in EXAMPLES[name]:
            if value.lstrip().startswith("{"):
                assert isinstance(json.loads(value), dict)


# --- Dockerfile ------------------------------------------------------------------------------------------------

def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (TEMPLATES / "Dockerfile").read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def _final_stage() -> tuple[str, dict[str, str], list[tuple[list[str], str]], str]:
    """The last stage's FROM image, its variables (ARG defaults and ENV), COPY (sources, dest) and ENTRYPOINT.

    Docker's scoping: ARGs before the first FROM are global (usable in FROM lines); every FROM starts a stage with
    no variables but what it declares.
    """
    global_args: dict[str, str] = {}
    env: dict[str, str] = {}
    image, copies, entrypoint, workdir = "", [], "", "/"
    for word, rest in _dockerfile():
        if word == "FROM":
            image, env, copies, entrypoint, workdir = _expand(rest.split()[0], global_args), {}, [], "", "/"
        elif word == "ARG":
            name, _, default = rest.partition("=")
            (env if image else global_args)[name] = _expand(default, env if image else global_args)
        elif word == "ENV":
            name, _, value = rest.partition("=")
            env[name] = _expand(value.strip('"'), env)
        elif word == "WORKDIR":
            workdir = _expand(rest, env)
        elif word == "COPY" and "--from=" not in rest:
            *sources, dest = rest.split()
            dest = _expand(dest, env)
            copies.append((sources, dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"))
        elif word == "ENTRYPOINT":
            entrypoint = rest
    return image, env, copies, entrypoint


def _repo_path_of(image_path: str) -> Path:
    _, _, copies, _ = _final_stage()
    for sources, dest in copies:
        into_folder = len(sources) > 1 or dest.endswith("/")
        dest = dest.rstrip("/")
        for source in sources:
            inside = f"{dest}/{Path(source).name}" if into_folder else dest
            if image_path == inside:
                return ROOT / source
            if (ROOT / source).is_dir() and image_path.startswith(inside + "/"):
                return ROOT / source / image_path[len(inside) + 1:]
    raise AssertionError(f"no COPY line puts anything at {image_path}")


def test_dockerfile_pins_beam_2_77_on_python_3_11() -> None:
    image, _, _, _ = _final_stage()
    match = re.fullmatch(r"apache/beam_python(\d+\.\d+)_sdk:(\d+\.\d+\.\d+)", image)
    assert match, f"the final stage is not a pinned Beam SDK image: {image}"
    assert match.group(1) == "3.11"
    assert match.group(2).startswith("2.77.")
    beam_pin = re.search(r"apache-beam\[[^\]]*\]([^\"]+)", (ROOT / "setup.py").read_text(encoding="utf-8"))
    assert beam_pin and beam_pin.group(1) == ">=2.77.0,<2.78", "setup.py's Beam pin moved: move the image too"


def test_dockerfile_is_launcher_and_worker() -> None:
    text = (TEMPLATES / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM \$\{LAUNCHER_IMAGE\}:\$\{LAUNCHER_TAG\} AS launcher$", text, re.M)
    assert "ARG LAUNCHER_IMAGE=gcr.io/dataflow-templates-base/python311-template-launcher-base" in text
    assert re.search(r"^COPY --from=launcher /opt/google/dataflow/python_template_launcher "
                     r"/opt/google/dataflow/python_template_launcher$", text, re.M)
    _, env, _, entrypoint = _final_stage()
    assert json.loads(entrypoint) == ["/opt/apache/beam/boot"], "workers need the Beam boot entrypoint"
    # Everything is installed in the image: no setup/requirements file to stage at every launch.
    assert "FLEX_TEMPLATE_PYTHON_SETUP_FILE" not in env and "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE" not in env
    assert _pip_install_run(), "the image installs the package with pip"


def _pip_install_run() -> str:
    """The RUN instruction that pip-installs the package (continuation lines joined)."""
    runs = [rest for word, rest in _dockerfile() if word == "RUN" and rest.startswith("pip install ")]
    assert len(runs) == 1, runs
    return runs[0]


def _install_requires() -> list[str]:
    setup = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    requires = next(kw.value for node in ast.walk(setup) if isinstance(node, ast.Call)
                    for kw in node.keywords if kw.arg == "install_requires")
    names = []
    for element in requires.elts:  # type: ignore[attr-defined]
        if isinstance(element, ast.Name):  # BEAM, a module-level constant
            element = next(node.value for node in setup.body if isinstance(node, ast.Assign)
                           and node.targets[0].id == element.id)  # type: ignore[attr-defined]
        names.append(re.split(r"[\[<>=!~;\s]", ast.literal_eval(element), maxsplit=1)[0])
    return names


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (TEMPLATES / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line)
            assert match, f"not a plain name==version pin: {line!r}"
            assert _normalized(match[1]) not in pins, f"pinned twice: {match[1]}"
            pins[_normalized(match[1])] = match[2]
    return pins


def test_the_image_installs_with_the_constraints_and_checks_the_result() -> None:
    run = " ".join(_pip_install_run().split())
    _, env, _, _ = _final_stage()
    match = re.fullmatch(r"pip install --no-cache-dir -c (\S+) \$\{WORKDIR\} && pip check", run)
    assert match, f"expected `pip install --no-cache-dir -c <constraints> ${{WORKDIR}} && pip check`, got {run!r}"
    assert _repo_path_of(_expand(match[1], env)) == TEMPLATES / "constraints.txt"


def test_constraints_pin_every_runtime_dependency_and_the_images_beam() -> None:
    pins = _constraints()
    missing = [name for name in _install_requires() if _normalized(name) not in pins]
    assert not missing, f"templates/constraints.txt does not pin {missing}: rerun templates/constraints.sh"
    image, _, _, _ = _final_stage()
    assert pins["apache-beam"] == image.rsplit(":", 1)[1], "constraints and the image's Beam differ"
    assert not {"pip", "setuptools", "wheel", "beam-currents"} & set(pins), "only runtime dependencies are pinned"
    # The extras' own dependencies are resolved too, not only the names setup.py lists.
    assert {"boto3", "google-cloud-storage", "azure-storage-blob", "google-cloud-pubsub", "grpcio"} <= set(pins)


def test_constraints_say_how_they_were_made() -> None:
    head = (TEMPLATES / "constraints.txt").read_text(encoding="utf-8").split("\n", 5)[:5]
    assert any("templates/constraints.sh" in line for line in head)
    script = (TEMPLATES / "constraints.sh").read_text(encoding="utf-8")
    assert os.access(TEMPLATES / "constraints.sh", os.X_OK)
    assert "--dry-run" in script and "--report" in script  # resolves; installs nothing
    assert "apache-beam[gcp,aws,azure]==$BEAM_VERSION" in script
    assert "template-constraints:" in (TEMPLATES / "template.mk").read_text(encoding="utf-8")
    assert "constraints.sh" in (TEMPLATES / "README.md").read_text(encoding="utf-8")


def test_launcher_tag_is_pinned_to_a_dated_release_by_default() -> None:
    dockerfile = dict(line.split("=", 1) for word, line in _dockerfile() if word == "ARG" and "=" in line)
    make_tag = re.search(r"^LAUNCHER_TAG \?= (\S+)$", (TEMPLATES / "template.mk").read_text(encoding="utf-8"), re.M)
    assert re.fullmatch(r"\d{8}_RC\d{2}", dockerfile["LAUNCHER_TAG"]), dockerfile["LAUNCHER_TAG"]
    assert make_tag and make_tag[1] == dockerfile["LAUNCHER_TAG"], "Dockerfile and template.mk pin different tags"


def _dockerignore() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = _dockerignore()
    for local in (".git", ".venv", ".tools", "out", "tests", ".pytest_cache", ".hypothesis"):
        assert local in patterns, f".dockerignore does not exclude {local}"


def test_dockerignore_keeps_everything_the_image_copies() -> None:
    import fnmatch

    _, _, copies, _ = _final_stage()
    for source in {source for sources, _ in copies for source in sources}:
        assert (ROOT / source).exists(), source
        for pattern in _dockerignore():
            parts = Path(source).parts
            hit = any(fnmatch.fnmatch("/".join(parts[:i]), pattern.lstrip("/").replace("**/", ""))
                      for i in range(1, len(parts) + 1))
            assert not hit, f".dockerignore pattern {pattern!r} drops {source}, which the image copies"


def test_dockerfile_copies_what_pip_install_needs() -> None:
    setup = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    includes = next(ast.literal_eval(kw.value) for node in ast.walk(setup) if isinstance(node, ast.Call)
                    for kw in node.keywords if kw.arg == "include")
    packages = {name.split(".")[0] for name in includes}
    _, _, copies, _ = _final_stage()
    copied = {source for sources, _ in copies for source in sources}
    # setup.py reads README.md for the long description; pyproject.toml names the build backend.
    needed = packages | {"setup.py", "README.md", "pyproject.toml"}
    assert needed <= copied, f"not copied into the image: {needed - copied}"


def test_dockerfile_copies_every_package_of_the_job() -> None:
    """Every top-level package the job's code imports (the bottom layer core/ included) is in the image."""
    job = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks", "examples"}
    assert {"core", "pipeline", "transforms", "sinks"} <= job
    _, _, copies, _ = _final_stage()
    copied = {source for sources, _ in copies for source in sources}
    assert job <= copied, f"not copied into the image: {job - copied}"


def test_flex_template_py_file_is_in_the_repo() -> None:
    _, env, _, _ = _final_stage()
    py_file = env.get("FLEX_TEMPLATE_PYTHON_PY_FILE")
    assert py_file and py_file.startswith("/"), f"FLEX_TEMPLATE_PYTHON_PY_FILE={py_file!r}"
    source = _repo_path_of(py_file)
    assert source.is_file(), f"{py_file} comes from {source}, which does not exist"
    assert source == TEMPLATES / "launch.py"


def test_launch_file_help_lists_every_parameter() -> None:
    _, env, _, _ = _final_stage()
    source = _repo_path_of(env["FLEX_TEMPLATE_PYTHON_PY_FILE"])
    done = subprocess.run([sys.executable, str(source.relative_to(ROOT)), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    missing = [name for name in PARAMS if f"--{name}" not in done.stdout]
    assert not missing, f"--help does not list {missing}"


# --- launch.py -------------------------------------------------------------------------------------------------

def _launch_module():  # noqa: ANN202 - the module object
    spec = importlib.util.spec_from_file_location("currents_template_launch", TEMPLATES / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_defaults_the_sdk_image_to_its_own() -> None:
    launch = _launch_module()
    env = {launch.IMAGE_ENV: "europe-west1-docker.pkg.dev/acme/beam-currents/beam-currents:v1"}
    args = ["--runner=DataflowRunner", "--source=file:x"]
    assert launch.with_default_image(args, env) == [*args, f"--sdk_container_image={env[launch.IMAGE_ENV]}"]
    for named in (["--sdk_container_image=other:1"], ["--sdk_container_image", "other:1"],
                  ["--worker_harness_container_image=other:1"]):
        assert launch.with_default_image(args + named, env) == args + named
    assert launch.with_default_image(args, {}) == args
    assert launch.with_default_image(args, {launch.IMAGE_ENV: ""}) == args
    assert launch.with_default_image(["--help"], env) == ["--help"]


def test_dockerfile_bakes_the_image_name_launch_reads() -> None:
    text = (TEMPLATES / "Dockerfile").read_text(encoding="utf-8")
    assert f"ENV {_launch_module().IMAGE_ENV}=${{SDK_CONTAINER_IMAGE}}" in text


# --- template.mk -----------------------------------------------------------------------------------------------

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")
RUN_VARS = {
    "PROJECT": "acme-data", "BUCKET": "acme-currents-dataflow", "TAG": "v1",
    "SOURCE": "generate:count=1000,rate=10",
    "CONNECTORS": '{"connectors": [{"id": "a", "type": "gcs", "bucket": "b"}]}',
    "DEAD_LETTER": "gs://acme-currents-dead-letters/prod", "PARAMETERS": "event_time=field~max_event_bytes=500000",
}


@pytest.fixture(scope="module")
def tool_stubs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH with stand-ins for gcloud and docker: the targets check they exist, `make -n` never runs them."""
    folder = tmp_path_factory.mktemp("tool-stubs")
    for tool in ("gcloud", "docker"):
        (folder / tool).write_text("#!/bin/sh\nexit 99\n")
        (folder / tool).chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


def _make(*args: str, path: str, **variables: str) -> subprocess.CompletedProcess:
    command = [shutil.which("make") or "make", "--no-print-directory", "-f", str(TEMPLATES / "template.mk"), "-n",
               *args, *(f"{name}={value}" for name, value in variables.items())]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path})


@needs_make
def test_make_names_every_missing_variable(tool_stubs: str) -> None:
    done = _make("template-run", path=tool_stubs, SOURCE="file:x")
    assert done.returncode != 0
    for name in ("PROJECT", "BUCKET", "CONNECTORS", "DEAD_LETTER"):
        assert f"set {name}=..." in done.stderr
    assert "set SOURCE=" not in done.stderr
    assert "BUILDER=podman" in _make("template-build", path=tool_stubs, BUILDER="podman", **RUN_VARS).stderr


@needs_make
def test_make_says_when_gcloud_is_missing() -> None:
    done = _make("template-run", path=os.devnull, **RUN_VARS)
    assert done.returncode != 0 and "gcloud is not on PATH" in done.stderr


@needs_make
def test_make_template_run_command(tool_stubs: str) -> None:
    done = _make("template-run", path=tool_stubs, **RUN_VARS)
    assert done.returncode == 0, done.stderr
    image = "us-central1-docker.pkg.dev/acme-data/beam-currents/beam-currents:v1"
    command = " ".join(done.stdout.replace("\\\n", " ").split())
    assert command.startswith("gcloud dataflow flex-template run 'beam-currents' ")
    assert "--template-file-gcs-location='gs://acme-currents-dataflow/templates/beam-currents-v1.json'" in command
    assert "--enable-streaming-engine" in command and "--additional-experiments='use_runner_v2'" in command
    assert "--update" not in command
    parameters = re.search(r"--parameters='\^~\^([^']*)'", command).group(1)
    values = dict(item.split("=", 1) for item in parameters.split("~"))
    assert values == {"source": RUN_VARS["SOURCE"], "connectors": RUN_VARS["CONNECTORS"],
                      "dead_letter": RUN_VARS["DEAD_LETTER"], "sdk_container_image": image,
                      "event_time": "field", "max_event_bytes": "500000"}
    for name, value in values.items():
        if name in PARAMS:
            assert _matches(name, value), f"make template-run passes {name}={value!r}, which the template refuses"


@needs_make
def test_make_template_update_and_build_commands(tool_stubs: str) -> None:
    update = _make("template-update", path=tool_stubs,
                   TRANSFORM_NAME_MAPPINGS="connector/amp/batch=connector/amplitude/batch", **RUN_VARS)
    assert update.returncode == 0, update.stderr
    assert "--update" in update.stdout
    assert "--transform-name-mappings='^~^connector/amp/batch=connector/amplitude/batch'" in update.stdout
    build = _make("template-build", path=tool_stubs, BUILDER="docker", LAUNCHER_TAG="20251006_RC00", **RUN_VARS)
    assert build.returncode == 0, build.stderr
    assert "--build-arg LAUNCHER_TAG=20251006_RC00" in build.stdout
    assert "gcloud dataflow flex-template build 'gs://acme-currents-dataflow/templates/beam-currents-v1.json'" \
        in build.stdout
    assert "--sdk-language=PYTHON" in build.stdout and "templates/metadata.json'" in build.stdout
    cloud = _make("template-image", path=tool_stubs, **RUN_VARS)
    assert cloud.returncode == 0, cloud.stderr
    config = re.search(r"printf '%s\\n' (.*) > ", cloud.stdout.replace("\\\n", " "), re.S).group(1)
    spec = json.loads("".join(re.findall(r"'([^']*)'", config)))
    assert spec["steps"][0]["args"][:3] == ["build", "-f", "templates/Dockerfile"]
    assert spec["images"] == ["us-central1-docker.pkg.dev/acme-data/beam-currents/beam-currents:v1"]
