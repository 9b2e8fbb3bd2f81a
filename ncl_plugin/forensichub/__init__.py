"""NCL in ForensicHub (NeurIPS 2025, ``scu-zjz/ForensicHub``), IMDL-BenCo's all-domain successor.

ForensicHub keeps registries of its own (``ForensicHub.registry.MODELS``, built
from its own copy of IMDL-BenCo's Registry class) and fills them with
IMDL-BenCo's zoo only, so importing ``ncl_plugin`` does not make NCL a
ForensicHub model. :func:`register` does: NCL and its network with plain BCE
(``deeplabv3plus``) under the names IMDL-BenCo knows them by. Their sampler and
losses stay in the plugin's registries (``ncl_plugin.registry``), which NCL
reads whoever builds it: ForensicHub has no registry for either.

``ncl_plugin.forensichub.register()`` registers them (importing ``ncl_plugin``
after ForensicHub does it too); ``benco forensichub`` (``python -m
ncl_plugin.forensichub``, :mod:`.launcher`) runs ForensicHub's own training
script with them registered. Importing this module imports no ForensicHub.
"""

from typing import Dict, Tuple

# ForensicHub names (IMDL-BenCo's for the same models) -> the plugin's model
MODELS: Dict[Tuple[str, ...], str] = {("NCL", "ncl"): "NCL", ("DeepLabV3Plus", "deeplabv3plus"): "DeepLabV3Plus"}


def register() -> None:
    """NCL and DeepLabV3Plus in ForensicHub's MODELS (once; a name ForensicHub already holds for another model
    is an error, not overwritten)."""
    import ForensicHub.registry as forensichub

    import ncl_plugin

    for names, attribute in MODELS.items():
        model = getattr(ncl_plugin, attribute)
        for name in names:
            held = forensichub.MODELS.get(name) if forensichub.MODELS.has(name) else None
            if held is None:
                forensichub.MODELS.register_module(name=name, module=model)
            elif held is not model:
                raise RuntimeError(f"ForensicHub's MODELS already holds another model named {name!r} ({held!r})")
