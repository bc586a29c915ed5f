"""Mixpanel's per-project request budgets: the run's budget (request_budget), one family's window and waits (family),
and the plan a read logs first (plan).

Serves manifest.yaml's `request_budget` (the limits RequestBudget keeps), `budget_retries` (BudgetRetries, first in
every error handler chain) and `query_retries` and `discovery_error_handler` (MixpanelBackoff).
"""
