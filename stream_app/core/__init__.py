"""The pure core: records, decoding, policy and settings, the customer state, the signals, the
purchase model, scoring, alerting and the playbook. It imports no Faust, no Kafka client and
nothing above it.
"""
