"""`python -m agent_sre ...`: the `agent-sre` command, without the console script on PATH."""

from .cli import main

if __name__ == "__main__":
    main()
