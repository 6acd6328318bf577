"""Tooling around the service, never imported by it: benchmarks, the offline random-weight checkpoint
builder, and rendered test pages with known text."""
