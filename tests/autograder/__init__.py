"""Tests of `python -m autograder`: release, collect, grading, the sandbox, the Lab."""
