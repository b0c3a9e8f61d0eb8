"""Stage 03: the nerve segmenter (model, inference, scores, fine-tuning, shipped weights), nerve presence and
nerve-centred crops (cutting, summaries, figures), run in order by ``stage``."""

__all__ = ["augment", "crop", "crop_figures", "crop_summary", "finetune", "frames", "geometry", "hints", "inference",
           "inputs", "presence", "pretrained", "realcheck", "scores", "sim_to_real", "stage", "subsets", "unet"]
