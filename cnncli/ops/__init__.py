"""The compute side: compiled layers (Op subclasses, one module per family, as in cnncli.layers),
the kernel decorator (jit) and the thread pool (threads).

Importing this package loads nothing: `cnncli.ops.jit` and `cnncli.ops.threads` are usable by the
optimizers and augmentation without the op registry, which is `cnncli.ops.registry`.
"""
