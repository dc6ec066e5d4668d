"""The student's command line: `python -m autograder.student` here; the student package ships
this file as its `autograder/__main__.py` (`python -m autograder validate|lab`)."""

import sys

from autograder.student.cli import main

if __name__ == "__main__":
    sys.exit(main())
