"""Running a suite: the runner (``runner``), where cells run (``local_executor``: a forkserver,
one process per cell; ``ray_executor``: Ray tasks), what runs inside a cell (``worker``), the
progress display (``progress``) and the machine and software a run records (``environment``, with the
kernel-selecting machine facts from ``machine_facts``)."""
