"""Where NCL must not run in reduced precision."""

import torch


def full_precision(tensor: torch.Tensor):
    """A context that turns autocast off on ``tensor``'s device.

    Cosine similarities divided by a temperature of 0.1 reach +-10, and their
    exponentials overflow float16's range; inside this context the caller's
    float32 tensors stay float32 even under AMP.
    """
    return torch.autocast(device_type=tensor.device.type, enabled=False)
