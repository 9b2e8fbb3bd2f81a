"""Under DDP with gloo, a rank whose batch holds only authentic images runs the same collectives."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(rank, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=__import__("datetime").timedelta(seconds=60))
    torch.manual_seed(0)  # same initial weights on both ranks
    from ncl_plugin import NCL

    model = torch.nn.parallel.DistributedDataParallel(NCL(backbone="resnet18", output_stride=16, patch_size=16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(rank)
    mask = torch.zeros(2, 1, 64, 64)
    if rank == 0:
        mask[:, :, 8:40, 4:36] = 1  # tampered, authentic and contour patches: every NCL term
    for _ in range(2):
        out = model(torch.randn(2, 3, 64, 64), mask)
        optimizer.zero_grad()
        out["backward_loss"].backward()
        optimizer.step()
    head = model.module.contrastive_loss.branch_tampered.block[0].weight.detach().clone()
    results[rank] = (float(out["visual_loss"]["ncl"]), head)
    dist.destroy_process_group()


def test_rank_with_only_authentic_images_does_not_deadlock():
    results = mp.Manager().dict()
    context = mp.start_processes(worker, args=(free_port(), results), nprocs=2, join=False, start_method="spawn")
    deadline = 240
    import time

    start = time.time()
    while not context.join(timeout=5):
        if time.time() - start > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"DDP did not finish in {deadline} s: a collective is waiting on one rank")
    assert results[0][0] > 0 and results[1][0] == 0  # rank 1 defined no NCL term
    assert torch.equal(results[0][1], results[1][1])  # gradients were all-reduced: same weights everywhere
