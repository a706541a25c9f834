"""End-effector Jacobian for the EE jog, from the robot description (the core only sees a callable).

The URDF (vla_description's arm by default, or the robot's own) goes through vla_core's
kinematics: the tool link's geometric Jacobian in the URDF's root frame, i.e. the base frame the
jog's twist is given in for an arm rooted at ``base_link``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_core.kinematics import KinematicTree
from vla_teleop.teleop.core import Jacobian

__all__ = ['urdf_jacobian']


def urdf_jacobian(urdf: str, joint_names: Sequence[str], link: str = 'ee_link') -> Jacobian:
    """``q (n,) -> (6, n)`` of ``link`` for ``joint_names`` of the URDF text ``urdf``.

    Raises ValueError (UrdfError) for a bad URDF, a link or joint it lacks.
    """
    tree = KinematicTree.from_urdf(urdf)
    names = tuple(joint_names)
    if link not in tree.links:
        raise ValueError(f"the robot description '{tree.name}' has no link '{link}'")
    tree.jacobian(link, {}, names)  # refuses joints the description cannot drive, now

    def jacobian(q: np.ndarray) -> np.ndarray:
        return tree.jacobian(link, dict(zip(names, q, strict=True)), names)

    return jacobian
