"""Zoo models built as `benco train` builds them in a benchmark run, without data: for tests and probes of one
model (can it take a training step, memorise a batch) that need the model, not a run."""

from pathlib import Path
from typing import Dict, Optional

from ncl_plugin.bench.runner import Budget, jobs
from ncl_plugin.engine.runtime import build_model


def build(name: str, size: int, folder: Path, device: str = "cpu"):
    """(model, args) for ``name`` at ``size``, through `benco train`'s own parser and builder with the
    recipe's flags (what a benchmark run gets), without the data. For a model whose recipe gives it a
    torch hub cache of its own, TORCH_HOME must be set by the caller (see :func:`environment`)."""
    import torch

    from ncl_plugin.commands import flags as shared
    from ncl_plugin.commands import train

    budget = Budget("", {}, [], [], {"image_size": size})
    (job,) = jobs(name, budget, folder)
    argv = ["--model", name, "--image_size", str(size), "--device", device, *job.flags]
    args, model_args, model_class = shared.parse_command(train.parser(), argv)
    args.distributed = False
    model, _ = build_model(model_class, args, model_args, torch.device(device))
    return model, args


def example_batch(size: int, batch: int = 2, edge_mask_width: Optional[int] = None, seed: int = 0) -> Dict:
    """A batch as IMDL-BenCo's datasets hand it to a model: a normalised image, a square tampered
    region, the label, the shapes, and the edge mask when the model reads one."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(batch, 1, size, size)
    mask[:, :, size // 4 : size // 2, size // 4 : size // 2] = 1
    data = {
        "image": torch.randn(batch, 3, size, size, generator=generator),
        "mask": mask,
        "label": torch.ones(batch, dtype=torch.long),
        "shape": torch.tensor([[size, size]] * batch),
        "origin_shape": torch.tensor([[size, size]] * batch),
        "name": [f"example{i}.png" for i in range(batch)],
    }
    if edge_mask_width:
        from IMDLBenCo.transforms import EdgeMaskGenerator

        edge = torch.as_tensor(EdgeMaskGenerator(edge_mask_width)(mask[0, 0].numpy())[0][0]).float()
        data["edge_mask"] = edge.expand(batch, 1, size, size).clone()
    return data
