"""Fault injection: whole calls against FakeProvider's scripted faults, one client per
scenario, with the resilience figures (attempts per call, calls until a breaker opens, time to
close) asserted through every driver."""
