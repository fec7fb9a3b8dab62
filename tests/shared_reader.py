"""A child process's side of tests/test_vllm_shards.py's shared-buffer test (a module of
its own so that the spawned child imports only torch and vllm_shards)."""

from jradievo_ray.inference.vllm_shards import open_shared


def read_shared(handle, inbox, outbox) -> None:
    view = open_shared(handle)
    outbox.put(view.tolist())
    inbox.get()  # the parent refills the buffer in place
    outbox.put(view.tolist())
