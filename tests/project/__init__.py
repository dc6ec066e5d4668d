"""The project itself: pinned versions, environment.yml."""
