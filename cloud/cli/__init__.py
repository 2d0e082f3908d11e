"""`certdrop`, the operator's command line: the parser and main, the issuing commands, the fleet
commands, and the exit codes.
"""
