"""Offline tools over a broker: the demo, replay of history files, the column mapping, the bundled
data sets, the synthetic generator and the evaluation.
"""
