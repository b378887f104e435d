import sys

from guardedllm.cli import main

# Guarded: simulate's worker processes import the main module again (multiprocessing's spawn),
# and must not run the command a second time.
if __name__ == "__main__":
    sys.exit(main())
