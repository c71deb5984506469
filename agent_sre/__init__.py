"""agent-sre: picks one remediation lambda function per firing alert and triggers it."""

__version__ = "0.1.0"
