"""Push tokens as the push tests write and recognise them."""

import hashlib


def sha(token: str) -> str:
    """The sha256 hex of a token: how the local FCM's call log and ``push_sends`` name it
    (computed here, not taken from the code under test)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_of(n: int, prefix: str = "tok") -> str:
    """The ``n``-th test token: long as FCM tokens are, recognisable in a failure."""
    return f"{prefix}-{n:06d}-" + "k" * 120
