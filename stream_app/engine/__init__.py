"""The engine: the event-time processor that applies, assesses, publishes and checkpoints, with its
merge order, clock, metrics and logs. Pure Python over the core; the Kafka side is given to it
as callbacks.
"""
