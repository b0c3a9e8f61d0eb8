"""Stage 02: frames from videos at 5 fps, the ultrasound image region, and quality control."""

__all__ = ["extraction", "funnel", "jobs", "prepare", "qc", "region", "stage"]
