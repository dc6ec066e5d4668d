"""The grading runner: the one per-submission step (worker.py) and the executors that run a batch of
them, local_executor.run_local and dask_executor.run_dask, both run(batch, bar) (batch.py)."""
