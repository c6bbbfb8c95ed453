import sys

from ntp_lib.experiments import main

sys.exit(main())
