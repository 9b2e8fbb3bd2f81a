"""``python -m ncl_plugin ...`` is ``benco ...``; torchrun runs it with ``-m ncl_plugin``."""

from ncl_plugin.cli import console_main

if __name__ == "__main__":
    console_main()
