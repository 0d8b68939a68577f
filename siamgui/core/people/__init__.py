"""Sorting a photo folder by person (no Qt).

- :mod:`~siamgui.core.people.cache`: every face of a photo and its embedding, keyed by content;
- :mod:`~siamgui.core.people.cluster`: walk a folder, embed every face, cluster at the model's threshold;
- :mod:`~siamgui.core.people.store`: the user's edits (merge, split, move, name, enrol) in SQLite.
"""
