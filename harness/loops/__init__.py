"""The training loops, one per protocol a task declares (harness/interface.py).

common.py is the toolkit every loop shares (seeding, `start_cell`, `TrainLoop`, the record's
measurement fields); supervised.py, continual.py, control.py and memory_only.py are the loops.
harness/runner.py picks one by the task's declared protocol and does nothing else.
"""
