"""The book's tooling (not part of ntp_lib, not imported by chapters).

- ``toc.py``            the table of contents as data: notebooks, pages, the Colab cell (Makefile, tests)
- ``run_notebook.py``   executes notebooks in place the way their outputs must be committed
- ``colab_check.py``    ``make colab-check``: every notebook on Colab's stack
- ``pathstar_sweep.py`` the job runner that made the recorded Part II results (on a GPU machine)
- ``pathstar_benchmark.py`` the CPU training-throughput benchmark recorded beside them
"""
