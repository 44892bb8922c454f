"""``churnwatch console``: the call centre's queue and customer card, and its HTTP API.

A process of its own, beside the workers: it reads the ``churn-alerts`` and
``feedback`` topics from the beginning into memory (:mod:`.index`), so every
console shows the same cluster-wide queue, whichever worker raised an alert,
and a restart rebuilds it; it asks a worker's look-up API for a customer's
current standing; and it writes outcomes to the ``feedback`` topic through
the same validation as any feedback event (:mod:`.outcomes`).
"""
