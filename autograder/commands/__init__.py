"""commands: see autograder/README.md (the rooms)."""
