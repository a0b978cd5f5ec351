"""stacksalt: a reclass model and Salt formulas for OpenStack on Kubernetes on bare metal."""

__version__ = "0.1.0"
