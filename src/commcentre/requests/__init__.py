"""Supplementary-information requests: state machine, legal time limits, EAW follow-up."""
