"""The one exception type users see: a single line saying what was wrong and what was expected."""


class SaesiteError(Exception):
    """A problem with the user's input or environment.

    The command line prints ``saesite: error: <message>`` and exits with code 2, with no
    traceback unless ``--debug`` is given. Messages name what was wrong, where, and what was
    expected, e.g. ``SAE d_in is 512 but hook 'blocks.0.hook_resid_pre' has width 128``.
    """
