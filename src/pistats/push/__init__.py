"""Push notifications over FCM: campaigns to analytics segments, invalid-token cleanup, results.

- :mod:`~pistats.push.message`: the FCM v1 message of a campaign, checked before sending (pure).
- :mod:`~pistats.push.fcm`: the thin FCM HTTP v1 client; every answer becomes a ``SendResult``.
- :mod:`~pistats.push.segments`: which users a segment expression selects, paged from the store.
- :mod:`~pistats.push.ledger`: campaigns and their sends in the registry (at most once per token).
- :mod:`~pistats.push.pacing`: the sending rate and retry delays (pure, clock injected).
- :mod:`~pistats.push.campaign`: a campaign run: targets, pacing, sends, settling, resuming.
- :mod:`~pistats.push.results`: ``push_sends`` in the store and each campaign's stats.
- :mod:`~pistats.push.export`: settled sends from the ledger to ``push_sends`` (``pistats push export``).
- :mod:`~pistats.push.welcome`: the ingest's welcome notification to each token a subscribe
  activates; :mod:`~pistats.push.fcm_sync`, its synchronous FCM sender with a deadline.
"""
