"""sandbox: see autograder/README.md (the rooms)."""
