"""How the tools report a problem the user must fix: one paragraph and exit status 2."""
import difflib
import sys
from typing import Any, Callable, Iterable, Optional

__all__ = ['UsageError', 'run_tool', 'close_match', 'similarity', 'did_you_mean']


class UsageError(Exception):
    """A problem with the command or the config that the user must fix; the message says how.

    ``exit_status`` is what the tool exits with (:func:`run_tool`): 2, a usage error.
    """

    exit_status = 2


def close_match(word: str, candidates: Iterable[str], cutoff: float = 0.8) -> Optional[str]:
    """The candidate ``word`` most likely misspells (difflib's similarity >= ``cutoff``)."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def similarity(a: str, b: str) -> float:
    """difflib's similarity ratio of two names (1.0: equal)."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.8) -> str:
    """A ``" (did you mean 'x'?)"`` hint for an unknown name, or ''."""
    match = close_match(word, candidates, cutoff)
    return f" (did you mean '{match}'?)" if match else ''


def run_tool(main: Callable[[], Any]) -> int:
    """Run a tool's main; a :class:`UsageError` becomes a one-paragraph message and its
    ``exit_status`` (2 for usage errors). The exit status is otherwise what ``main`` returns
    (an int), or 0."""
    try:
        status = main()
    except UsageError as e:
        print(f'error: {e}', file=sys.stderr)
        return e.exit_status
    return status if isinstance(status, int) else 0
