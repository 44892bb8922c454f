"""The Kafka and Faust adapter: the worker's builder, the app, the one module that
reaches into Faust's private API, agents, topics, tables and changelog, the
Prometheus sensor, the client factory, topic administration, the broker watch
and the embedded broker.
"""
