"""``python -m hf_emms.cli`` (and ``accelerate launch -m hf_emms.cli``): the ``hf-emms`` command."""

import sys

from . import main

sys.exit(main())
