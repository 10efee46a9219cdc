"""The learned classifiers (root cause so far); see :mod:`mast.classify.learned.classifier`."""

from mast.classify.learned.classifier import LearnedClassifier
from mast.classify.learned.model import AttributionModel, ModelError

__all__ = ["AttributionModel", "LearnedClassifier", "ModelError"]
