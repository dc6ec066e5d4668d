"""config: see autograder/README.md (the rooms)."""
