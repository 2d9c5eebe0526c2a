"""Drawing a ``Topology``: ``mermaid`` (text GitHub renders), ``dot`` (Graphviz's language) and ``files``
(writes both and the SVG Graphviz's ``dot`` renders), with ``style`` holding what they share."""
