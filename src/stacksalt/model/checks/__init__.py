"""Semantic checks over rendered nodes, one module per topic.

Every module in this package is imported by ``stacksalt.model.semantic.load_checks``;
decorate each check with ``@stacksalt.model.semantic.semantic_check``.
"""
