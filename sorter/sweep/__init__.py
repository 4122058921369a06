"""Config sweeps over recordings: every (recording, setting) pair replayed deterministically, on Ray or one by one.

``grid`` reads the sweep file and expands it into settings (pure), ``truth`` scores a replay of a simulated
recording against the world it shows, ``footage`` renders load-independent recordings of the simulated line,
``task`` runs one replay, ``runner`` runs them all (sequentially or as Ray tasks, through ``cluster``),
``table`` turns the summaries into tables and rankings, ``pictures`` and ``page`` into charts and a
self-contained HTML page. Only ``cluster`` imports Ray, and only when asked to.
"""
