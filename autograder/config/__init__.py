"""Configuration: the course layout (course.py), nbgrader's settings (nbgrader_config.py), Formgrader's
Lab (lab_instructor/) and the offline feedback page (templates/)."""
