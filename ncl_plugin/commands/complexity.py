"""``benco complexity``: parameters and FLOPs (fvcore), fed the inputs IMDL-BenCo's test_complexity.py feeds."""

import inspect
from typing import Dict, List

import torch
from rich.text import Text

from ncl_plugin.commands import flags
from ncl_plugin.config import Parser
from ncl_plugin.terminal import say, show

NAME = "complexity"
SUMMARY = "parameters and FLOPs (fvcore)"
TAKES_CONFIG = True


def parser() -> Parser:
    p = Parser(
        prog="benco complexity",
        description="Parameters and FLOPs (fvcore), as IMDL-BenCo's test_complexity.py counts them.",
    )
    flags.common(p)
    p.add_argument("--test_batch_size", default=1, type=int)
    p.add_argument("--table_depth", default=2, type=int, help="module depth of the fvcore table")
    return p


def complexity(args, model_args, model_class) -> Dict:
    from fvcore.nn import FlopCountAnalysis, flop_count_table

    from ncl_plugin.engine.runtime import build_model, setup, single_process

    device = setup(args)
    single_process(args, NAME)
    model, _ = build_model(model_class, args, model_args, device)
    model.eval()
    size, batch = args.image_size, args.test_batch_size
    inputs = {
        "image": torch.randn(batch, 3, size, size, device=device),
        "mask": torch.zeros(batch, 1, size, size, device=device),
        "label": torch.zeros(batch, dtype=torch.long, device=device),
    }
    ordered = tuple(
        inputs.get(name) for name in inspect.signature(model.forward).parameters if name not in ("args", "kwargs")
    )
    used = set()
    hooks = [m.register_forward_hook(lambda mod, i, o: used.add(mod)) for m in model.modules()]
    with torch.no_grad():
        flops = FlopCountAnalysis(model, ordered)
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        total_flops = flops.total()
    for hook in hooks:
        hook.remove()
    params = sum(p.numel() for p in model.parameters())
    inference_params = sum(p.numel() for m in used for p in m.parameters(recurse=False))
    show(Text(flop_count_table(flops, max_depth=args.table_depth)))
    result = {
        "model": args.model,
        "image_size": size,
        "batch": batch,
        "parameters": params,
        "inference_parameters": inference_params,
        "flops": total_flops,
        "gflops_per_image": total_flops / batch / 1e9,
    }
    say(
        f"{args.model} at {size}x{size}: {params / 1e6:.2f} M parameters "
        f"({inference_parameters_text(params, inference_params)}), "
        f"{result['gflops_per_image']:.2f} GFLOPs per image (fvcore counts a multiply-add as one FLOP)"
    )
    return result


def inference_parameters_text(total: int, used: int) -> str:
    if used == total:
        return "all used at inference"
    return f"{used / 1e6:.2f} M used at inference; the rest only in training"


def main(argv: List[str]) -> int:
    complexity(*flags.parse_command(parser(), argv))
    return 0
