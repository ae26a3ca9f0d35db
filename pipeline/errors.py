"""Errors a user can cause: one family, caught once in the CLI (one line, exit status 2).

Programming errors are not ``PipelineError`` and keep their traceback.
"""


class PipelineError(Exception):
    """A problem with the user's input (file, config key, value) and how to fix it.

    The message is a single line: what is wrong, where (file, line, key) and what to do.
    """

    exit_status = 2
