"""The fleet seen from the operator's side: every site's certificate and every agent's report
(`status`), as a table, a dashboard and alerts.
"""
