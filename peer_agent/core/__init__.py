"""The pure core: no asyncio, no sockets, no clock reads, no module-level randomness.

Time is always an argument (``now``, monotonic seconds) and randomness is a ``random.Random``
passed in by the caller, so the simulator, the agent and the tests drive the same code.
"""
