"""Evaluation report: tables, picture panels, error maps, loss curves, cross-sensor matrix.

A plain library (numpy + matplotlib with the Agg backend); the report flow and the evaluate flow
call it.
"""
