"""The student's set-up (`student/`)."""
