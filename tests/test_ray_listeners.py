"""The search's private local Ray (search/local_ray.py): every listening socket of the run's
Ray processes is on loopback, token authentication is on with a token file only its owner
can read, and Ray's gRPC servers refuse a request that lacks the token. Read from the socket
table while a real search (tests/toy_search.py, in its own process) is certain to be
running: its evaluations hang until the test kills it."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from jradievo_ray.errors import UserError
from jradievo_ray.search.local_ray import ensure_private_token, token_file

SCRIPT = Path(__file__).resolve().parent / "toy_search.py"
# What could decide Ray's binding or authentication other than local_ray itself.
RAY_ENV = (
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
    "RAY_AUTH_TOKEN",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_ADDRESS",
    "JRADIEVO_FAULT",
)
ACTOR = "ray::EvalActor.run"  # an actor's process title while it evaluates


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_token_file_is_made_private(tmp_path):
    path = tmp_path / "home" / ".ray" / "auth_token"
    ensure_private_token(path)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert [p.name for p in path.parent.iterdir()] == ["auth_token"]  # no draft left


def test_an_existing_token_file_loses_group_and_other_permissions(tmp_path):
    path = tmp_path / "auth_token"
    path.write_text("a" * 64)
    path.chmod(0o644)
    ensure_private_token(path)
    assert mode(path) == 0o600
    assert path.read_text() == "a" * 64


def test_an_empty_token_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "auth_token"
    path.touch(mode=0o600)
    with pytest.raises(UserError, match=f"{path}: Ray's token file is empty"):
        ensure_private_token(path)


def test_the_token_file_is_the_one_ray_reads(monkeypatch, tmp_path):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_file() == tmp_path / ".ray" / "auth_token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert token_file() == tmp_path / "t"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "b" * 64)
    assert token_file() is None


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on an IPv6 socket
    return (mapped or address).is_loopback


def family(driver: psutil.Process) -> dict[psutil.Process, str]:
    """The driver and every process under it (the run's Ray), each with its title: the
    program's name, or what Ray sets for a worker (ray::EvalActor.run, ray::IDLE...)."""
    out = {}
    for p in [driver, *driver.children(recursive=True)]:
        # A process may end meanwhile (a zombie has no cmdline).
        with contextlib.suppress(psutil.NoSuchProcess, IndexError):
            out[p] = p.cmdline()[0].rsplit("/", 1)[-1]
    return out


@pytest.fixture
def hung_search(tmp_path):
    """A toy search with an empty HOME (no token yet) and RAY_AUTH_MODE=disabled in its
    environment, whose two actors are both hung in an evaluation; killed, with every
    process of its session, at the end."""
    home = tmp_path / "home"
    home.mkdir()
    hang = tmp_path / "hang"
    hang.touch()
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
    env.update(HOME=str(home), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    log = tmp_path / "driver.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(tmp_path / "run"), f"--hang-if={hang}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        driver = psutil.Process(proc.pid)
        deadline = time.monotonic() + 300
        while list(family(driver).values()).count(ACTOR) < 2:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "actors not hung within 300 s\n" + log.read_text()
            time.sleep(0.5)
        yield driver, home
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kill_session(proc.pid)


def kill_session(sid: int) -> None:
    """Kill any process still in session `sid` (one that left the driver's process group)
    and wait until none is left."""
    deadline = time.monotonic() + 60
    while left := [p for p in psutil.process_iter() if _sid(p.pid) == sid]:
        assert time.monotonic() < deadline, f"left running: {left}"
        for p in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        time.sleep(0.2)


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


@pytest.mark.integration
def test_the_private_ray_listens_on_loopback_only_and_needs_its_token(hung_search):
    import grpc
    from ray.core.generated import core_worker_pb2, gcs_service_pb2, node_manager_pb2
    from ray.core.generated.core_worker_pb2_grpc import CoreWorkerServiceStub
    from ray.core.generated.gcs_service_pb2_grpc import NodeInfoGcsServiceStub
    from ray.core.generated.node_manager_pb2_grpc import NodeManagerServiceStub

    driver, home = hung_search
    listeners: dict[str, list[tuple[str, int]]] = {}  # process title -> (ip, port)
    for p, title in family(driver).items():
        try:
            sockets = p.net_connections("inet")
        except psutil.NoSuchProcess:  # an idle worker Ray ended meanwhile
            continue
        for c in sockets:
            if c.status == psutil.CONN_LISTEN:
                listeners.setdefault(title, []).append((c.laddr.ip, c.laddr.port))
    # The components that listen on all interfaces when Ray picks the node's address.
    assert {"gcs_server", "raylet", ACTOR} <= set(listeners), listeners
    exposed = {t: [a for a in addrs if not is_loopback(a[0])] for t, addrs in listeners.items()}
    assert not any(exposed.values()), exposed

    gcs = next(p for p, title in family(driver).items() if title == "gcs_server")
    assert gcs.environ().get("RAY_AUTH_MODE") == "token"
    token_path = home / ".ray" / "auth_token"
    assert mode(token_path) == 0o600
    auth = [("authorization", f"Bearer {token_path.read_text().strip()}")]

    def refused_then_answered(call, port: int):
        """The call without the token is refused as unauthenticated; with it, answered."""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.RpcError) as refused:
                call(channel, None)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, port
            return call(channel, auth)

    (gcs_port,) = [port for _, port in listeners["gcs_server"]]
    nodes = refused_then_answered(
        lambda ch, md: NodeInfoGcsServiceStub(ch).GetAllNodeInfo(
            gcs_service_pb2.GetAllNodeInfoRequest(), timeout=10, metadata=md
        ),
        gcs_port,
    ).node_info_list
    assert [n.node_manager_address for n in nodes] == ["127.0.0.1"]
    refused_then_answered(
        lambda ch, md: NodeManagerServiceStub(ch).GetSystemConfig(
            node_manager_pb2.GetSystemConfigRequest(), timeout=10, metadata=md
        ),
        nodes[0].node_manager_port,
    )
    for _, port in listeners[ACTOR]:
        refused_then_answered(
            lambda ch, md: CoreWorkerServiceStub(ch).GetCoreWorkerStats(
                core_worker_pb2.GetCoreWorkerStatsRequest(), timeout=10, metadata=md
            ),
            port,
        )
