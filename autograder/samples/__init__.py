"""Sample submissions and cohorts built from the released notebooks, for the tests and benchmarks."""
