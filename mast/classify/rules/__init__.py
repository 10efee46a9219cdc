"""The rules classifier: SQL detectors from ``classifiers/rules/`` run by DuckDB in one batch.

This package hands names on: rule files and their headers (:mod:`.files`), the
per-step feature pass kept in the store (:mod:`.features`), the detector run and its
results (:mod:`.detect`), the classifier (:mod:`.classifier`).
"""

from mast.classify.rules.classifier import ENGINE_VERSION, RulesClassifier
from mast.classify.rules.detect import (DetectorRun, build_results, current_features, prepare_selection, read_chunk,
                                        run_detectors)
from mast.classify.rules.features import (FEATURE_TABLE, FEATURE_TRACES, FEATURES, FeatureHook, ensure_features,
                                          features_version, set_feature_views)
from mast.classify.rules.files import (ENV_RULES_DIR, Detector, default_rules_dir, load_detectors, parse_detector,
                                       strip_semicolon)

__all__ = ["ENGINE_VERSION", "ENV_RULES_DIR", "FEATURES", "FEATURE_TABLE", "FEATURE_TRACES", "Detector",
           "DetectorRun", "FeatureHook", "RulesClassifier", "build_results", "current_features", "default_rules_dir", "ensure_features",
           "features_version", "load_detectors", "parse_detector", "prepare_selection", "read_chunk",
           "run_detectors", "set_feature_views", "strip_semicolon"]
