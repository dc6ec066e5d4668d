"""Tests of the `vitcourse` library, one file per module."""
