"""Fault tests: real `commcentre` processes, killed and raced, against a real receiver.

    .venv/bin/pytest tests/faults -s                 # SQLite; prints the figures
    COMMCENTRE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/pytest tests/faults -s             # PostgreSQL (own database per test)
    FAULT_SEED=1234 ...                              # replay a run's kill times and delays

Each test starts `python -m commcentre serve --no-worker` and `... worker`
processes on a database of its own, points a `webhook` partner at a receiver
on 127.0.0.1 (receiver.py), and judges what arrived with Jepsen's total-queue
check (checker.py). Both tests are marked `slow`.
"""
