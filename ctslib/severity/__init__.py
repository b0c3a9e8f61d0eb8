"""Stages 04 and 05: the published severity CNNs, their input pipeline, splits, training and sanity flags."""

__all__ = ["gradcam", "inputs", "models", "recipe", "sanity", "speed", "split", "stage", "tasks", "train"]
