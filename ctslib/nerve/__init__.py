"""Stage 03: the nerve segmenter (model, training, shipped weights), nerve presence and nerve-centred crops."""

__all__ = ["augment", "crop", "geometry", "presence", "pretrained", "segment"]
