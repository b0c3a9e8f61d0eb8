"""Running the study and writing its report: the papermill runner, profiles, the index page, privacy scrub."""

__all__ = ["index", "pages", "privacy", "profiles", "runner"]
