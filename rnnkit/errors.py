"""rnnkit's user-facing errors: one line that says what went wrong and what to do.

:class:`RnnkitError` subclasses ValueError, so library callers can catch it as the invalid-input error it
is; the CLI prints it as ``rnnkit: error: <message>`` without a traceback (``--debug`` shows one).

Where torch.nn's recurrent modules raise another class for the same mistake, rnnkit's error is both, so
code written for either library catches it: :class:`ShapeError` is also a RuntimeError (a wrong input or
state size, an empty sequence) and :class:`ArgumentTypeError` also a TypeError (``hidden_size=5.0``). Their
messages contain torch's own wording, so a test that matches torch's message matches rnnkit's too.
"""


class RnnkitError(ValueError):
    """Bad input, a bad file or a run folder in the wrong state; the message is one actionable line."""


class ShapeError(RnnkitError, RuntimeError):
    """An input or state of the wrong size at run time (torch.nn raises RuntimeError for these)."""


class ArgumentTypeError(RnnkitError, TypeError):
    """A constructor argument of the wrong type (torch.nn raises TypeError for these)."""
