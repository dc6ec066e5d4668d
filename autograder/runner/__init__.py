"""runner: see autograder/README.md (the rooms)."""
