"""The summary tab: win rates across seeds (under a chosen localisation score), TKO
distributions, agreement between methods, faithfulness, the randomization sanity check,
training curves and the confusion matrix.

One :class:`ResultsStore` reads the tables written by ``pixel-evidence evaluate`` (through
:mod:`pixel_evidence.results`) and the training histories in the checkpoint metadata; one section
viewer per question draws from it. Everything here is read-only.
"""

from pixel_evidence.dashboard.summary.results import ResultsStore
from pixel_evidence.dashboard.summary.view import SummaryView

__all__ = ["ResultsStore", "SummaryView"]
