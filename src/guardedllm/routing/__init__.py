"""Routing: turn the name a caller uses (alias, route or model) into an ordered plan."""

from guardedllm.routing._plan import Plan, estimate_on, plan_route, prices_of, usage_cost

__all__ = ["Plan", "estimate_on", "plan_route", "prices_of", "usage_cost"]
