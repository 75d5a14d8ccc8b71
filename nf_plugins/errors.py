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


def close_matches(word: str, choices, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The entries of ``choices`` nearest to ``word`` (difflib's ratio), best first: the one source of
    every "did you mean" suggestion in this package."""
    import difflib  # only on the error path

    return difflib.get_close_matches(word, list(choices), n=n, cutoff=cutoff)


def did_you_mean(word: str, choices, n: int = 3, cutoff: float = 0.6, otherwise: str = "") -> str:
    """``"did you mean 'a', 'b'?"`` for the entries of ``choices`` close to ``word``, or ``otherwise``
    (e.g. where to look up the valid names) when none is close."""
    close = close_matches(word, choices, n=n, cutoff=cutoff)
    return f"did you mean {', '.join(map(repr, close))}?" if close else otherwise
