"""Validation of what the formulas would write, without running anything.

``collect`` renders every node's states (``state.show_sls``) and gathers the Kubernetes
and Calico objects written with ``file.serialize``; ``kubernetes`` validates an object
against the strict Kubernetes API schema of a given version (and hands Calico objects
to ``calico``).
"""
