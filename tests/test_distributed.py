"""Under DDP, a rank whose batch holds no contour patch runs the same collectives as the others.

IMDL-BenCo's train.py (and the plugin under CUDA) converts every BatchNorm to SyncBatchNorm, whose
forward and backward each wait on every rank. SyncBatchNorm needs CUDA, so here every BatchNorm is
converted, the same way, to a stand-in that performs an all-reduce of SyncBatchNorm's size (two
values per channel) in its forward and its backward: a rank that skips a normalisation layer the
others run leaves them waiting, and a rank that runs them in another order mismatches the sizes.
"""

import datetime
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Collective(torch.autograd.Function):
    """Identity whose forward and backward each all-reduce a (2 C,) tensor, as SyncBatchNorm's do."""

    @staticmethod
    def forward(ctx, x, channels):
        dist.all_reduce(torch.zeros(2 * channels))
        ctx.channels = channels
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        dist.all_reduce(torch.zeros(2 * ctx.channels))
        return grad, None


class CollectiveBatchNorm(nn.BatchNorm2d):
    def forward(self, x):
        return super().forward(_Collective.apply(x, self.num_features))


def convert_like_sync_batchnorm(module):
    """What torch.nn.SyncBatchNorm.convert_sync_batchnorm does, with the stand-in: every _BatchNorm."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        converted = CollectiveBatchNorm(module.num_features, module.eps, module.momentum, module.affine)
        converted.load_state_dict(module.state_dict())
        return converted
    for name, child in module.named_children():
        module.add_module(name, convert_like_sync_batchnorm(child))
    return module


def worker(rank, port, pivot_norm, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))
    torch.manual_seed(0)  # same initial weights on both ranks
    from ncl_plugin import NCL

    model = NCL(backbone="resnet18", output_stride=16, patch_size=16, pivot_norm=pivot_norm)
    model = torch.nn.parallel.DistributedDataParallel(convert_like_sync_batchnorm(model))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(rank)
    mask = torch.zeros(2, 1, 64, 64)
    if rank == 0:
        mask[:, :, 8:40, 4:36] = 1  # tampered, authentic and contour patches: every NCL term
    else:
        mask[1] = 1  # an authentic image and a fully tampered one: no contour patch, no NCL term
    for _ in range(2):
        out = model(torch.randn(2, 3, 64, 64), mask)
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
    head = model.module.contrastive_loss.branch_tampered.block[0].weight.detach().clone()
    results[rank] = (float(out["visual_loss"]["ncl"]), head)
    dist.destroy_process_group()


@pytest.mark.parametrize("pivot_norm", ["group", "batch"])
def test_rank_without_contour_patches_runs_the_same_collectives(pivot_norm):
    results = mp.Manager().dict()
    context = mp.start_processes(
        worker, args=(free_port(), pivot_norm, results), nprocs=2, join=False, start_method="spawn"
    )
    deadline = 240
    start = time.time()
    try:
        while not context.join(timeout=5):
            if time.time() - start > deadline:
                pytest.fail(f"DDP did not finish in {deadline} s: a collective is waiting on one rank")
    except mp.ProcessRaisedException as error:  # gloo's timeout: one rank waited on a collective
        pytest.fail(f"a rank failed, waiting on a collective the other did not run: {str(error).splitlines()[-1]}")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    assert results[0][0] > 0 and results[1][0] == 0  # rank 1 defined no NCL term
    assert torch.equal(results[0][1], results[1][1])  # gradients were all-reduced: same weights everywhere
