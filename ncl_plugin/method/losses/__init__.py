"""NCL's two losses, one module each: the dual-branch contrastive loss (:mod:`.ncl_contrastive`)
and the pivot-consistent loss (:mod:`.pivot_consistent`). Neither loops over images or patches in
Python."""

from ncl_plugin.method.losses.ncl_contrastive import TERMS, NCLContrastiveLoss, PivotBranch
from ncl_plugin.method.losses.pivot_consistent import PivotConsistentLoss

__all__ = ["TERMS", "NCLContrastiveLoss", "PivotBranch", "PivotConsistentLoss"]
