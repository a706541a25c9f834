"""vla_sim picks the headless GL backend (MUJOCO_GL) on import; it must come before any test
module imports mujoco itself, or the renderer aborts the process."""

import vla_sim  # noqa: F401
