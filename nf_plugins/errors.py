"""Which errors are the user's to fix: the CLI reports these as one line and exit status 2, not a traceback.

Our argument and input checks raise ``ValueError`` (a bad value, an unknown model name, a file that is not
what it should be) or one of the ``OSError``\\ s below (a path that is missing, not writable, a file where a
folder should be); their messages say what was wrong and how to fix it (docs/bad_inputs.md). Anything else
(``RuntimeError``, ``TypeError``, ``KeyError``, ...) is a bug or an environment problem and keeps its
traceback. ``nf-plugins --debug`` shows the traceback of a user error too.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """A bad argument or input, in a message the user can act on (a ``ValueError``, so code that catches
    those keeps working)."""


class UsageError(UserInputError):
    """A command line argparse refused: ``prog`` is the (sub)command whose usage it breaks."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes UserInputError, json.JSONDecodeError, huggingface_hub's HFValidationError
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def one_line(error: BaseException) -> str:
    """The error's message on one line (some of ours wrap a suggested command onto a second line)."""
    return " ".join(str(error).split()) or type(error).__name__
