"""The search's Ray: join a cluster, or start a private local instance that listens on
loopback only and always requires Ray's token authentication.

Ray 2.60 binds every server of a node (GCS, raylet, object manager, worker gRPC, dashboard
agent, metrics) to 127.0.0.1 only when the node's IP is loopback, and otherwise to all
interfaces; `ray.init(_node_ip_address="127.0.0.1")` alone does not do it, since Ray
replaces a loopback address by the machine's routable one unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (its single-machine mode). Token authentication is
set here on purpose, not left to Ray 2.60's default for a new local cluster."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from jradievo_ray.errors import UserError

SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH_MODE = "RAY_AUTH_MODE"


def init_ray(address: str | None) -> None:
    """Join `address` (or RAY_ADDRESS) if given, else start the private local instance."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, log_to_driver=True)
    else:
        start_private()


def start_private() -> None:
    """Start a Ray instance for this process only, on 127.0.0.1 with token authentication;
    raise if Ray did not honour either."""
    import ray
    from ray._private import ray_constants
    from ray._raylet import AuthenticationMode, Config, get_authentication_mode

    path = token_file()
    if path is not None:
        ensure_private_token(path)
    os.environ[AUTH_MODE] = "token"  # for this process and the Ray processes it starts
    Config.initialize("")  # this process read RAY_AUTH_MODE when it imported Ray
    os.environ[SINGLE_MACHINE] = "0"  # the same, for Ray's own processes
    ray_constants.ENABLE_RAY_CLUSTER = False  # read when this process imported Ray
    ray.init(
        address="local",
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=True,
    )
    node_ip = ray.util.get_node_ip_address()
    if node_ip != "127.0.0.1" or get_authentication_mode() != AuthenticationMode.TOKEN:
        ray.shutdown()
        raise RuntimeError(
            f"the private Ray instance came up on {node_ip} with authentication mode "
            f"{get_authentication_mode()}, not on 127.0.0.1 with token authentication"
        )


def token_file() -> Path | None:
    """The file Ray reads its token from, as Ray 2.60's AuthenticationTokenLoader picks it:
    None when RAY_AUTH_TOKEN holds the token itself, else RAY_AUTH_TOKEN_PATH, else
    $HOME/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return None
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return Path(os.environ["RAY_AUTH_TOKEN_PATH"])
    return Path(os.environ.get("HOME") or ".") / ".ray" / "auth_token"


def ensure_private_token(path: Path) -> None:
    """Make `path` hold a token that only its owner can read: create it with a new random
    token and mode 0600 when missing (Ray's own `ray get-auth-token --generate` and
    `ray.init()` write it with the umask's mode, 0644 under the usual 022), and take group
    and other permissions off an existing one."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(draft, path)  # never replaces a token another process wrote meanwhile
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            os.chmod(path, mode & 0o700)
        except OSError as e:
            raise UserError(
                f"{path}: Ray's token file is readable by others (mode {mode:o}) and could "
                f"not be made private: {e.strerror}"
            ) from e
    if not path.read_text().strip():
        raise UserError(f"{path}: Ray's token file is empty; delete it or write a token in it")
