"""Wall-clock timing for comparisons measured in one run on a shared machine."""

import math
import time

__all__ = ["fastest_times"]


def fastest_times(functions, rounds, after_call=None):
    """Each function's fastest of ``rounds`` calls (seconds), in the order given.

    Every round calls each function once, in an order rotated by one from the previous
    round, so that the slow spells of a shared machine hit all of them alike.
    ``after_call(result)`` runs inside the timing after each call (to wait for a GPU, say).

    Examples
    --------
    >>> from sklearn_attns._timing import fastest_times
    >>> fast, slow = fastest_times([lambda: sum(range(10)), lambda: sum(range(100_000))], rounds=3)
    >>> fast < slow
    True
    """
    best = [math.inf] * len(functions)
    for round_ in range(rounds):
        for i in [(j + round_) % len(functions) for j in range(len(functions))]:
            start = time.perf_counter()
            result = functions[i]()
            if after_call is not None:
                after_call(result)
            best[i] = min(best[i], time.perf_counter() - start)
    return best
