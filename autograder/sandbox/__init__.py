"""The security boundary, in one folder to audit: kernel launch (launch.py: bubblewrap, prlimit),
budgets (budget.py), execution with the tests in the grader (execute.py), the typed channel between
kernel and grader (channel.py), and the kernel client (kernel_client.py)."""
