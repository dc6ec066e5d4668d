"""samples: see autograder/README.md (the rooms)."""
