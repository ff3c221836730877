"""Data-pipeline pieces that subclass or register into a toolbox, one module per toolbox.

Nothing is imported here: each module imports its toolbox, and only the configs that need it
load it (``custom_imports``), so ``import mmpyconv`` stays toolbox-free.
"""
