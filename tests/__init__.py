"""The course's tests, laid out like the code they test (see tests/README.md)."""
