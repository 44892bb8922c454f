"""The Kafka and Faust adapter: the app, its transport and agents, topics, tables and changelog,
the client factory, topic administration, the broker watch and the embedded broker.
"""
