"""The cascade classifier: learned models label every trace, the judge the ones they are
least sure of plus a random check sample, and the judge's labels retrain the learned
models as they arrive.  This module only hands names on.

Where things are: :mod:`.check` (the seeded check sample, agreement with an interval),
:mod:`.tier` (the learned tier: features, distilled per-mode models, uncertainty),
:mod:`.classifier` (the contract and the run).
"""

from mast.classify.cascade.classifier import VERSION, CascadeClassifier

__all__ = ["CascadeClassifier", "VERSION"]
