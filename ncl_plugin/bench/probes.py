"""Probes of one trained model, for the diagnostic scripts in ``benchmarks/``: the model of a run
folder, and one image's scores."""

import torch


def load(checkpoint: str):
    from ncl_plugin.config import get_model_class, model_parameters
    from ncl_plugin.engine.checkpoints import best_checkpoint, checkpoint_defaults, load_weights

    name, defaults = checkpoint_defaults(checkpoint)
    model_class = get_model_class(name)
    params = model_parameters(model_class)
    model = model_class(**{k: v for k, v in defaults.items() if k in params})
    load_weights(model, best_checkpoint(checkpoint))
    return model.eval(), defaults.get("image_size", 512)


def image_scores(probability: torch.Tensor, mask: torch.Tensor):
    """(F1 at 0.5, best-threshold F1, AUC) of one image, or None for an authentic one."""
    from sklearn.metrics import roc_auc_score

    from ncl_plugin.engine.metrics import best_threshold_f1

    truth = mask > 0.5
    if not truth.any():
        return None
    predicted = probability > 0.5
    f1 = 2 * (predicted & truth).sum().item() / (predicted.sum().item() + truth.sum().item())
    best = best_threshold_f1(probability[None], mask[None]).item()
    return f1, best, roc_auc_score(truth.flatten().numpy(), probability.flatten().numpy())
