"""Data parallelism with JAX's own machinery: one mesh over every device of every process, the
batch split on its `data` axis (whole sessions per device), everything else replicated. The same
code runs on one CPU, several GPUs or a TPU slice; jit's SPMD partitioner inserts the all-reduces."""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Iterator, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ultr.errors import DataError

_initialized = False


def initialize(cfg: Mapping[str, Any] | None = None) -> None:
    """Start jax.distributed when the job spans several processes.

    Explicit config (coordinator_address, num_processes, process_id) wins; otherwise SLURM
    (several tasks) and TPU VM pods are detected by jax itself. A single process needs nothing.
    """
    global _initialized
    if _initialized:
        return
    cfg = cfg or {}
    explicit = cfg.get("coordinator_address")
    slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1
    tpu_pod = bool(os.environ.get("TPU_WORKER_HOSTNAMES") or os.environ.get("CLOUD_TPU_TASK_ID"))
    if explicit:
        # Cross-process collectives for CPU devices (no effect on GPU/TPU). Asking for the backend
        # here would initialise it, which must wait until after jax.distributed.initialize.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=explicit, num_processes=int(cfg["num_processes"]), process_id=int(cfg["process_id"]))
    elif slurm or tpu_pod:
        jax.distributed.initialize()
    _initialized = True


def data_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


class Sharder:
    """Places host batches and replicated trees on the mesh."""

    def __init__(self, mesh: Mesh, global_batch: int) -> None:
        n = mesh.devices.size
        if global_batch % n:
            raise DataError(f"batch size {global_batch} is not divisible by the {n} devices; choose a multiple of {n}")
        self.mesh = mesh
        self.batch = NamedSharding(mesh, P("data"))
        self.replicated = NamedSharding(mesh, P())
        self.multi_process = jax.process_count() > 1

    def put_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        if self.multi_process:
            # Each process holds its own rows; together they form the global batch.
            return {k: jax.make_array_from_process_local_data(self.batch, v) for k, v in batch.items()}
        return jax.device_put(dict(batch), self.batch)

    def replicate(self, tree: Any) -> Any:
        if self.multi_process:
            return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self.replicated, np.asarray(x)), tree)
        return jax.device_put(tree, self.replicated)


class Prefetcher:
    """Prepare and transfer the next batches in a background thread while the device computes.

    Yields (device batch, iterator state after that batch) so checkpoints record exactly what
    training consumed, not what the thread read ahead."""

    def __init__(self, it: Any, put: Any, depth: int = 2) -> None:
        self._it, self._put = it, put
        self._q: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread = None
        if depth > 0:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = next(self._it)
                item = (self._put(batch), self._it.state())
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as e:  # surfaced to the consumer instead of dying silently
            self._q.put(e)

    def __iter__(self) -> Iterator[tuple[dict[str, jax.Array], dict[str, int]]]:
        return self

    def __next__(self) -> tuple[dict[str, jax.Array], dict[str, int]]:
        if self._thread is None:  # synchronous mode
            batch = next(self._it)
            return self._put(batch), self._it.state()
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class RowIterator:
    """The row indices of each batch (not the rows): the input of device-resident training."""

    def __init__(self, it: Any) -> None:
        self._it = it

    def __next__(self) -> np.ndarray:
        return self._it.next_indices().astype(np.int32)

    def state(self) -> dict[str, int]:
        return self._it.state()


def gather_step(train_step: Any, sharder: Sharder) -> Any:
    """`train_step` over a batch gathered on the device from device-resident training arrays.

    Small logs (MQ2008's 200k sessions are 26 MB) live on the device for the whole run, and each
    step ships only its row indices (1 KB at batch 256): the batch is a gather fused into the step,
    so there is no input work left to hide, and no second host thread competing with the compute
    threads (on a 2-core CPU the background prefetcher could not always hide its work). Rows are
    gathered exactly, so the model is bitwise the one the host-batch path trains."""

    def step(state: Any, arrays: Mapping[str, jax.Array], rows: jax.Array, features: Any) -> Any:
        batch = {k: jax.lax.with_sharding_constraint(v[rows], sharder.batch) for k, v in arrays.items()}
        return train_step(state, batch, features)

    return jax.jit(step, donate_argnums=0)


def device_resident(arrays: Mapping[str, np.ndarray], max_mb: float | None) -> bool:
    """Whether training arrays go to the device whole (single process and under `max_mb`)."""
    if not max_mb or jax.process_count() > 1:
        return False  # several processes: each reads its own shards, batches are assembled per process
    if _simulated_cpu_devices():
        # Several devices simulated on the host CPU share its cores: keep the path the 8-device
        # equality was established on (host batches, no thread): with device-resident data, runs that
        # overlap other jobs can time out in XLA:CPU's in-process all-reduce rendezvous.
        return False
    return sum(v.nbytes for v in arrays.values()) <= max_mb * 2**20


def _simulated_cpu_devices() -> bool:
    return jax.default_backend() == "cpu" and jax.local_device_count() > 1


def prefetch_depth() -> int:
    """Background prefetch, except with several devices simulated on the host CPU: there a transfer
    issued from a second thread between the per-device launches of a step can leave the
    all-reduce rendezvous waiting for devices that never start (XLA:CPU aborts after 40 s)."""
    return 0 if _simulated_cpu_devices() else 2
