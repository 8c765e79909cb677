"""`python -m trading_bot.phase …`"""

import sys

from trading_bot.phase.cli import main

sys.exit(main())
