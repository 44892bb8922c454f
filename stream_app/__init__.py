"""Churnwatch: real-time churn signals from customer event streams (Faust on Kafka)."""

__version__ = "0.1.0"
