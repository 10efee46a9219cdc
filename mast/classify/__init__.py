"""Classifiers: one contract (:mod:`mast.classify.contract`) for rules, learned models
and LLM judges, one registry (:mod:`mast.classify.registry`), one runner
(:mod:`mast.classify.runner`).  This module only hands their names on."""

from mast.classify.contract import ClassifierBase, Classifier, Estimate, Option, Output, flag
from mast.classify.registry import coverage, create, factory, names, options_of, parse_assignments, register

__all__ = ["Classifier", "ClassifierBase", "Estimate", "Option", "Output", "coverage", "create", "factory",
           "flag", "names", "options_of", "parse_assignments", "register"]
