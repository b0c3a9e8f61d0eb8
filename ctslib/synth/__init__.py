"""Synthetic default dataset: a simulated study cohort with B-mode videos and nerve masks."""
