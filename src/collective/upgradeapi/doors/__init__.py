"""Plone's other upgrade doors, and other writers, while a run holds the lock:
``@addons`` upgrade (:mod:`.addons`), the classic forms routed through the
engine (:mod:`.forms`) or refused while locked (:mod:`.classic`), the write
hold (:mod:`.hold`).
"""
