"""``churnwatch sink webhook URL``: the churn-alerts topic, pushed to an HTTP endpoint.

For marketing and CRM tools that cannot read Kafka (Braze, HubSpot,
Customer.io, an in-house CRM, a team's Slack channel).  One alert is
delivered at a time, in each partition's order; the consumer offset is
committed only after the endpoint answered 2xx (or the alert was
dead-lettered), so every alert is delivered at least once and a restart
delivers again at most the one that was in flight.  ``alert_id`` is the
idempotency key: the ``Idempotency-Key`` header and a field of every payload.

Modules: :mod:`.config` (options and ``CHURNWATCH_SINK_*`` variables),
:mod:`.payloads` (the ``--format`` mappings), :mod:`.signing` (the HMAC
signature header), :mod:`.delivery` (one alert's attempts and back-off),
:mod:`.runner` (the consumer loop), :mod:`.command` (the CLI).
"""
