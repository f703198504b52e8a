"""Runs: the one place that turns a request into a run folder.

`erase`, `hide` and `recover` (`runs/erase.py`), `attack` (`runs/attack.py`), `evaluate`, `generate`, `inspect` and
`graph` (`runs/score.py`) each check every input before any work, write their folder atomically (a partial folder
beside the output, renamed when complete) and resume the same way. The command line, the bench and the demo call
these functions, so a run folder has the same layout wherever it was made.
"""
