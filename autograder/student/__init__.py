"""The student side of the course tool: exactly what the student package ships.

`python -m autograder package` copies this folder as it is (with `autograder/__init__.py`, and
`__main__.py` here as the package's `autograder/__main__.py`): Validate (`validate.py`), the student
Lab and its server extension (`lab.py`, `lab_config/`), the settings Validate reads
(`validate_config.py`, which the instructor's configuration loads too) and the paths of a copy of
the course (`settings.py`). Nothing here imports the rest of `autograder`: the package would not
have it (tests/autograder/test_student_package.py checks it).
"""
