"""End-effector Jacobians for the EE jog (the core only sees a callable).

``sim_jacobian`` uses the MuJoCo model of the arm in development (vla_sim): the tool site's
linear and angular Jacobian on a scratch ``MjData``. vla_sim's ``base_link`` sits at the world
origin unrotated, so world = base frame. Imported lazily: mujoco and vla_sim are optional.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_teleop.teleop.core import Jacobian

__all__ = ['sim_jacobian']


def sim_jacobian(joint_names: Sequence[str]) -> Jacobian:
    """``q (n,) -> (6, n)`` for ``joint_names`` (sim joint names) of vla_sim's arm.

    Raises ImportError without mujoco/vla_sim, ValueError for a joint the model lacks.
    """
    import vla_sim  # noqa: F401, I001  (first: sets MUJOCO_GL before mujoco is imported)
    import mujoco
    from vla_sim.config import SimConfig
    from vla_sim.scene import build_mjcf

    model = mujoco.MjModel.from_xml_string(build_mjcf(SimConfig()))
    data = mujoco.MjData(model)
    site = model.site('ee_site').id
    try:
        jids = [model.joint(n).id for n in joint_names]
    except KeyError as err:
        raise ValueError(f'the sim model has no joint {err}') from None
    qadr = np.array([model.jnt_qposadr[j] for j in jids])
    dadr = np.array([model.jnt_dofadr[j] for j in jids])
    jacp = np.zeros((3, model.nv))
    jacr = np.zeros((3, model.nv))

    def jacobian(q: np.ndarray) -> np.ndarray:
        data.qpos[qadr] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_jacSite(model, data, jacp, jacr, site)
        return np.vstack([jacp[:, dadr], jacr[:, dadr]])

    return jacobian
