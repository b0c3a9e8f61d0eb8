"""Running the study and writing its report: the papermill runner, profiles, the index page, privacy scrub."""

__all__ = ["index", "kernel", "pages", "privacy", "profiles", "runner"]
