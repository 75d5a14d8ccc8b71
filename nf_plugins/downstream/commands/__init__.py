"""The ``nf-plugins`` subcommands of the OpenMMLab side: ``train``, ``test`` (any mmseg config, as mmseg's
tools), ``demo-segmentation`` and ``demo-depth``. Each module defines ``add_arguments(parser)`` and
``run(args, parser)``; tools/*.py are thin entry points over them."""
