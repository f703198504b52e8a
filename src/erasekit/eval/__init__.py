"""Evaluation: generation, prompt sets, judges, metrics."""
