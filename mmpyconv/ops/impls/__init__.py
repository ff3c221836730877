"""The ways to compute a PyConv, one module each, all with the same two functions:

* ``compute(x, plan, weights, biases)`` -- the layer's output for input ``x``, from the level
  weights (``(c_i, C_in / g_i, *kernel_i)`` each) and biases (None, or one per level), for the
  :class:`~mmpyconv.ops.plan.PyConvPlan` ``plan``; differentiable in all three;
* ``unavailable(x, plan)`` -- why it cannot compute this input (a sentence that says what to use
  instead), or None when it can.

Every implementation reads the same per-level parameters, so a checkpoint does not depend on
which one ran. :mod:`mmpyconv.ops.dispatch` holds the table of them and the rule that chooses.
"""
