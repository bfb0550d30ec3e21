"""A monotonic clock that a retry's waits move instead of sleeping: pass the clock as
``monotonic`` and its ``sleep`` as ``sleep``, and a retry budget is spent by the backoff alone,
however long the real calls take on a loaded machine."""


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
