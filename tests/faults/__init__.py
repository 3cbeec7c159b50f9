"""Fault tests: real `commcentre` processes, killed and raced, against a real receiver.

    .venv/bin/pytest tests/faults -s                 # SQLite; prints the figures
    COMMCENTRE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/pytest tests/faults -s             # PostgreSQL (own database per test)
    FAULT_SEED=1234 ...                              # replay a run's kill times and delays
    FAULT_SCALE=long ...                             # more kills, crashes and messages

Each test starts `python -m commcentre serve --no-worker` and `... worker`
processes on a database of its own, points a `webhook` partner at a receiver
on 127.0.0.1 (receiver.py), and judges what arrived with Jepsen's total-queue
check (checker.py). The API SIGKILL test drives a load that outlives the API
(load.py); the database crash test makes a PostgreSQL cluster of its own
(pgcluster.py) and runs with or without COMMCENTRE_TEST_DATABASE_URL; the
partner chaos test has the receiver answer 500, 429, 410, hang or reset. Every
test is marked `slow`; docs/reliability.md has their last figures.
"""
