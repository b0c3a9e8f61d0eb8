"""Synthetic default dataset: a simulated study cohort with B-mode videos and nerve masks.

``dataset.ensure_dataset(out_dir, config.SynthConfig(...))`` writes (or reuses) a data folder in exactly the input
layout of docs/pipeline.md, plus the generator's ground truth under ``truth/``. Modules:

* ``config``   the frozen ``SynthConfig`` (stored as ``synth_config.json`` beside the data);
* ``cohort``   participants, wrists and NCS values (graded by ``ctslib.data.ncs``);
* ``anatomy``  per-wrist anatomy and the tissue maps of the transverse and longitudinal planes;
* ``bmode``    the convolutional speckle model that turns tissue maps into 8-bit frames;
* ``video``    probe motion, runs of bad frames, rendering and writing of one video;
* ``dataset``  the whole folder: cohort, videos, masks, acquisition.json, truth/;
* ``summary``  tables and a montage read back from ``truth/`` (never a pipeline input);
* ``realism``  how close synthetic frames are to real ultrasound (image statistics, a domain classifier);
* ``scenes``   randomised cross-sections (nerves anywhere among varied tissue) for the segmenter's training.

These data validate the pipeline only; they say nothing about the clinical claim.
"""

__all__ = ["anatomy", "bmode", "cohort", "config", "dataset", "realism", "scenes", "summary", "video"]
