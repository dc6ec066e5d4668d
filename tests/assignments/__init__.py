"""The assignments' solutions and hidden tests, run as students' notebooks run."""
