"""Stage 01 and the user's data folder: the readers of every input file, the cohort's grading, the validator.

Readers: ``cohort`` (cohort.csv), ``acquisition`` (acquisition.json, its one reader), ``video`` and
``dicom`` (the videos), ``timing`` (frame times and the 5 fps sampling), ``masks`` (nerve masks),
``accept_list`` (the expert's qc_accept.csv), ``images`` (grey images and label masks on disk), ``usgra``
(the public usgra-seg real nerve images). ``ncs`` grades a wrist from its nerve conduction study.
``validate`` checks a whole folder (``checks`` and ``media_checks`` hold its checks).
"""

__all__ = ["accept_list", "acquisition", "checks", "cohort", "dicom", "images", "masks", "media_checks", "ncs", "timing",
           "usgra", "validate", "video"]
