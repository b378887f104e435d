import sys

from guardedllm.cli import main

sys.exit(main())
