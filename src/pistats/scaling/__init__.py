"""Scaling out with the load: the autoscaler's rule (``policy``) and the capacity model that tests
it against a surge (``simulation``)."""
