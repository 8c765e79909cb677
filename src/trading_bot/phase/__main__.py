"""`python -m trading_bot.phase …`"""

import os
import sys

from trading_bot.phase.cli import EXIT_OUTPUT_CLOSED, main

code = main()
if code == EXIT_OUTPUT_CLOSED:
    # Python flushes stdout once more on the way out; into a closed pipe that would print
    # "Exception ignored … BrokenPipeError". What is left unsaid goes nowhere instead.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
sys.exit(code)
