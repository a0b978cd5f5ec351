"""Upgrades of the OpenStack control plane: what a model change does to the objects."""
