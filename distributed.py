"""torchrun's processes for vqvae_imagenet.py: the process group, each process's device and share of
the images, every rank's random state, and the numbers the ranks add up or agree on.

    ranks = Ranks(device, precision)   # WORLD_SIZE and RANK from torchrun; world 1 without it
    ranks.sampler(images, seed)        # this rank's share of an epoch, shuffled by seed and epoch
    ranks.wrap(model, find_unused)     # DistributedDataParallel, or the model itself
    ranks.sum(tensor), ranks.any(flag), ranks.union(paths)
    ranks.random_state                 # get_state(): every rank's torch random state; set_state()

Without torchrun every call is what one process would do, so vqvae_imagenet.py reads the same
either way. Why a top-level file: only that script trains on several processes, and what this
needs says nothing about autoencoders; it lives here once, off the script's reading path.
"""
import contextlib
import os

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, Subset

import runs


class Ranks:
    """This process among torchrun's: world (how many), rank (which; rank 0 writes the run), device."""

    def __init__(self, device="auto", precision="fp32"):
        self.world, self.rank = world_size(), rank()
        use_cuda = runs.pick_device(device) == "cuda"
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            if precision == "fp32":
                torch.set_float32_matmul_precision("medium")  # as the original: TF32 / bf16 inside matmuls
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        self.random_state = RandomState(self)

    def sampler(self, images, seed):
        """This rank's share of the training images, shuffled anew each epoch (set_epoch) from seed."""
        return DistributedSampler(images, num_replicas=self.world, rank=self.rank, shuffle=True, seed=seed)

    def share(self, images):
        """This rank's share of an evaluation: every world-th image."""
        return Subset(images, range(self.rank, len(images), self.world))

    def wrap(self, model, find_unused):
        """The model as the steps call it: DistributedDataParallel (find_unused: a parameter that
        gets no gradient, vqvae's codebook) under torchrun, else the model itself."""
        if self.world == 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=find_unused)

    def no_sync(self, net, stepping):
        """A batch that does not end an accumulated step keeps its gradient on this rank."""
        return contextlib.nullcontext() if stepping or self.world == 1 else net.no_sync()

    def sum(self, tensor):
        """tensor summed over the ranks, in place."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag):
        """True on every rank if it is on one (a Ctrl-C reaches the ranks at different steps)."""
        if self.world == 1:
            return bool(flag)
        flag = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def union(self, paths):
        """The set of paths any rank holds."""
        if self.world == 1:
            return set(paths)
        gathered = [None] * self.world
        dist.all_gather_object(gathered, sorted(paths))
        return set().union(*map(set, gathered))


class RandomState:
    """Every rank's torch random state (dropout, the DataLoader's seeds): what --resume restores.
    get_state() is a collective under torchrun: every rank calls it at the same point."""

    def __init__(self, ranks):
        self.ranks = ranks

    def get_state(self):
        device = self.ranks.device
        state = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(device)
        if self.ranks.world == 1:
            return [state]
        gathered = [None] * self.ranks.world
        dist.all_gather_object(gathered, {k: v.cpu() for k, v in state.items()})
        return gathered

    def set_state(self, states):
        rank, device = self.ranks.rank, self.ranks.device
        torch.set_rng_state(states[rank]["cpu"])
        if device.type == "cuda" and "cuda" in states[rank]:
            torch.cuda.set_rng_state(states[rank]["cuda"], device)


def rank():
    """Which process this is (torchrun's RANK; 0 without torchrun): rank 0 writes the run."""
    return int(os.environ.get("RANK", 0))


def world_size():
    """How many processes train (torchrun's WORLD_SIZE; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", 1))


def finish(succeeded):
    """The end of a torchrun process: after a success, wait for every rank (rank 0 may still be
    saving; a rank that leaves alone can abort inside gloo); then leave the process group."""
    if dist.is_initialized():
        if succeeded:
            dist.barrier()
        dist.destroy_process_group()
