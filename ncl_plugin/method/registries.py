"""The plugin's own registries, beside IMDL-BenCo's MODELS: NCL looks its parts up here by name
(``--sampler``, ``--contrastive_loss``, ``--segmentation_loss``); :mod:`ncl_plugin.registry` fills them.
The one place the plugin imports IMDL-BenCo's registry module, quietly."""

import contextlib
import io
import warnings

# IMDL-BenCo's import prints the torch version, and it and timm warn about their own
# deprecations; none of that concerns a user of this plugin.
with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from IMDLBenCo.registry import MODELS, Registry

SAMPLERS = Registry(name="SAMPLERS")
LOSSES = Registry(name="LOSSES")

__all__ = ["LOSSES", "MODELS", "Registry", "SAMPLERS"]
