"""Lag you can see: what running tasks publish (``publish``, ``tasks``) and the view
``pistats status`` builds from it, the checkpoints and the stream (``view``)."""
