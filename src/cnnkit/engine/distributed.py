"""Multi-GPU / multi-node through `torchrun` (DESIGN rule 6): read the standard environment.

`torchrun --nproc_per_node=8 -m cnnkit train ...` sets RANK, LOCAL_RANK and WORLD_SIZE;
without them everything here is a no-op and the same command runs on one CPU.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnkit.errors import CnnkitError


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> DistInfo:
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"]))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


# How a collective fails when a peer process is gone (gloo and NCCL wordings, torch 2.x)
_LOST = ("connection closed by peer", "connection reset", "broken pipe", "socket", "timed out", "timeout",
         "nccl", "gloo", "ecconnreset", "connection refused")


def is_lost_worker(err: BaseException, info: DistInfo) -> bool:
    """Whether `err` is a collective (all-reduce, broadcast, barrier) failing under torchrun: another rank died."""
    if not info.enabled:
        return False
    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(w in text for w in _LOST)


def lost_worker_error(err: BaseException, info: DistInfo) -> CnnkitError:
    """The one sentence rank `info.rank` prints instead of the backend's traceback."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0][:160]  # drop gloo's source-file prefix
    return CnnkitError(f"Rank {info.rank} of {info.world_size} lost contact with another worker under torchrun "
                       f"({first}): that worker stopped or was killed; see its own output, then continue with "
                       "--resume RUN_DIR.")


def teardown(info: DistInfo, quiet: bool = False) -> None:
    """Destroy the process group; with `quiet` (a peer is already gone) a failure to do so is ignored."""
    if info.enabled and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:
            if not quiet:
                raise


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= info.world_size
    return value


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's decision (e.g. early stopping, which only rank 0 evaluates) made every rank's: a rank
    that kept training alone would wait forever in DDP's gradient all-reduce."""
    if not info.enabled:
        return flag
    value = torch.tensor([int(flag)], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(value, src=0)
    return bool(value.item())


def broadcast_object(obj, info: DistInfo):
    """Rank 0's value of a picklable object (e.g. the run directory it chose) on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
