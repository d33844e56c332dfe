"""rnnkit's user-facing error: one line that says what went wrong and what to do.

It subclasses ValueError, so library callers can catch it as the invalid-input error it is; the CLI
prints it as ``rnnkit: error: <message>`` without a traceback (``--debug`` shows one).
"""


class RnnkitError(ValueError):
    """Bad input, a bad file or a run folder in the wrong state; the message is one actionable line."""
