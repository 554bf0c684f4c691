"""Errors that reach the user.

Anything the user typed or pointed us at that we cannot use raises
:class:`InputError`; the CLI turns it into one line on stderr and exit code 2.
Conditions the modelled kernel itself would hit (an allocation returning NULL)
are *results*, never exceptions.
"""


class InputError(Exception):
    """Bad user input: unknown kernel, malformed file, out-of-range value."""


class KernelBug(Exception):
    """A condition on which the real kernel would BUG() or panic.

    Raised by the model where the kernel calls skb_over_panic(),
    skb_under_panic() or hits a BUG_ON(); it means the *caller* of the
    modelled function misused it, just as it would in the kernel.
    """


class SkbOverPanic(KernelBug):
    """net/core/skbuff.c: skb_over_panic() - skb_put() past skb->end."""


class SkbUnderPanic(KernelBug):
    """net/core/skbuff.c: skb_under_panic() - skb_push() below skb->head."""
