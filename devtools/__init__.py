"""Local stand-ins (DynamoDB, fake upstream) for tests, ``make run`` and benchmarks."""
