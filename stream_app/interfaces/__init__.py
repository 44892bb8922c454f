"""What people and other programs talk to: the command line, the HTTP views, explain, the dead-
letter commands and the worker's entry point.
"""
