# The course's settings that Validate reads (the student Lab's button and `python -m autograder
# validate`), and that grading uses too: autograder/config/nbgrader_config.py loads this file, and
# the student package ships it as it is. Change these limits here.
c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)

# Limits count the CPU time of the kernel and its children, so a busy machine changes no grade;
# code that waits without computing is stopped by the clock at wall_factor x these limits.
c.Execute.timeout = 120             # CPU-seconds per cell, then the cell is interrupted (Validate: seconds)
c.GuardedExecute.cpu_budget = 600   # CPU-seconds per notebook
# nbgrader's Validator with the per-cell limit above and, by default, as many math threads as
# the machine has idle cores (one on a busy machine, where more threads only wait for each other).
c.CourseValidator.threads = 0
