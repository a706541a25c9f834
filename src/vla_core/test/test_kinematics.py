import math

import numpy as np
import pytest

from vla_core.kinematics import KinematicTree, UrdfError

PLANAR = """<robot name="planar">
  <link name="base"/><link name="upper"/><link name="fore"/><link name="tip"/>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/>
    <axis xyz="0 0 1"/><limit lower="-2" upper="2" velocity="1" effort="5"/></joint>
  <joint name="elbow" type="continuous"><parent link="upper"/><child link="fore"/>
    <origin xyz="1 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="tool" type="fixed"><parent link="fore"/><child link="tip"/>
    <origin xyz="0.5 0 0"/></joint>
</robot>"""

# Offsets, tilted axes, a prismatic joint and a mimic: everything the Jacobian has to get right.
TWISTED = """<robot name="twisted">
  <link name="l0"/>
  <joint name="a" type="revolute"><parent link="l0"/><child link="l1"/>
    <origin xyz="0.1 0.2 0.3" rpy="0.3 -0.2 0.7"/><axis xyz="0 0.6 0.8"/>
    <limit lower="-3" upper="3" velocity="1" effort="1"/></joint>
  <joint name="b" type="prismatic"><parent link="l1"/><child link="l2"/>
    <origin xyz="0 0.4 0" rpy="1.0 0 0"/><axis xyz="1 1 0"/>
    <limit lower="-1" upper="1" velocity="1" effort="1"/></joint>
  <joint name="c" type="revolute"><parent link="l2"/><child link="l3"/>
    <origin xyz="0.3 0 -0.1" rpy="0 0.5 0"/><axis xyz="1 0 0"/>
    <limit lower="-3" upper="3" velocity="1" effort="1"/></joint>
  <joint name="c_mimic" type="revolute"><parent link="l3"/><child link="l4"/>
    <origin xyz="0 0 0.25"/><axis xyz="0 1 0"/><mimic joint="c" multiplier="-2" offset="0.1"/>
    <limit lower="-3" upper="3" velocity="1" effort="1"/></joint>
  <joint name="flange" type="fixed"><parent link="l4"/><child link="tool"/>
    <origin xyz="0.05 0.02 0.1" rpy="3.14159 0 0"/></joint>
  <joint name="other" type="revolute"><parent link="l0"/><child link="side"/>
    <limit lower="-1" upper="1" velocity="1" effort="1"/></joint>
</robot>"""


def test_planar_arm_forward_kinematics_is_analytic():
    tree = KinematicTree.from_urdf(PLANAR)
    assert tree.root == 'base' and tree.actuated_joints == ('shoulder', 'elbow')
    a, b = 0.4, -1.1
    tip = tree.link_pose('tip', {'shoulder': a, 'elbow': b})
    expected = [math.cos(a) + 0.5 * math.cos(a + b), math.sin(a) + 0.5 * math.sin(a + b), 0.0]
    np.testing.assert_allclose(tip[:3, 3], expected, atol=1e-12)
    np.testing.assert_allclose(tree.forward({'shoulder': a, 'elbow': b})['tip'], tip, atol=1e-12)
    lower, upper = tree.limits(['shoulder', 'elbow'])
    np.testing.assert_array_equal(lower, [-2.0, -math.inf])
    np.testing.assert_array_equal(upper, [2.0, math.inf])


def test_joint_transforms_compose_to_forward_kinematics():
    tree = KinematicTree.from_urdf(TWISTED)
    q = {'a': 0.3, 'b': -0.2, 'c': 1.1}
    positions = tree.positions(q)
    assert positions['c_mimic'] == pytest.approx(-2.0 * 1.1 + 0.1)
    assert positions['other'] == 0.0  # not given: 0
    pose = np.eye(4)
    for joint in tree.path('tool'):
        pose = pose @ tree.joint_transform(joint.name, positions.get(joint.name, 0.0))
    np.testing.assert_allclose(pose, tree.link_pose('tool', q), atol=1e-12)
    np.testing.assert_allclose(tree.forward(q, ['tool'])['tool'], pose, atol=1e-12)
    r = pose[:3, :3]
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)


def _numeric_jacobian(tree, link, q, names, eps=1e-6):
    cols = []
    for name in names:
        hi, lo = dict(q), dict(q)
        hi[name] += eps
        lo[name] -= eps
        t_hi, t_lo = tree.link_pose(link, hi), tree.link_pose(link, lo)
        dp = (t_hi[:3, 3] - t_lo[:3, 3]) / (2 * eps)
        dr = (t_hi[:3, :3] - t_lo[:3, :3]) / (2 * eps) @ tree.link_pose(link, q)[:3, :3].T
        cols.append(np.concatenate([dp, [dr[2, 1], dr[0, 2], dr[1, 0]]]))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize('seed', range(5))
def test_jacobian_matches_finite_differences(seed):
    tree = KinematicTree.from_urdf(TWISTED)
    rng = np.random.default_rng(seed)
    names = ('a', 'b', 'c', 'other')
    q = dict(zip(names, rng.uniform(-1.0, 1.0, 4), strict=True))
    jac = tree.jacobian('tool', q, names)
    assert jac.shape == (6, 4)
    np.testing.assert_allclose(jac, _numeric_jacobian(tree, 'tool', q, names), atol=1e-8)
    np.testing.assert_array_equal(jac[:, 3], 0.0)  # 'other' is not on the tool's path
    np.testing.assert_array_equal(jac[3:, 1], 0.0)  # a prismatic joint does not rotate the tool


def test_jacobian_refuses_joints_it_cannot_drive():
    tree = KinematicTree.from_urdf(TWISTED)
    for name in ('nope', 'flange', 'c_mimic'):
        with pytest.raises(ValueError, match=f"no actuated joint '{name}'"):
            tree.jacobian('tool', {}, ['a', name])
    with pytest.raises(KeyError, match="no link 'nope'"):
        tree.link_pose('nope', {})


def _robot(joints: str) -> str:
    return f'<robot name="r"><link name="a"/>{joints}</robot>'


J = '<joint name="{n}" type="{t}"><parent link="{p}"/><child link="{c}"/>{x}</joint>'


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('<robot', 'not valid XML'),
        ('<model name="r"/>', 'not <robot>'),
        (_robot(J.format(n='j', t='floating', p='a', c='b', x='')), "type 'floating'"),
        (_robot(J.format(n='j', t='revolute', p='a', c='b', x='')), 'needs <limit>'),
        (_robot(J.format(n='j', t='fixed', p='a', c='b', x='<origin xyz="1 2"/>')), '3 finite'),
        (_robot(J.format(n='j', t='fixed', p='a', c='b', x='') * 2), 'defined twice'),
        (_robot(J.format(n='j', t='fixed', p='a', c='b', x='')
                + J.format(n='k', t='fixed', p='x', c='y', x='')), 'one root link'),
        (_robot(J.format(n='j', t='fixed', p='a', c='b', x='')
                + J.format(n='k', t='fixed', p='c', c='b', x='')), 'two parent joints'),
        (_robot(J.format(n='j', t='fixed', p='a', c='b', x='')
                + J.format(n='k', t='fixed', p='c', c='d', x='')
                + J.format(n='l', t='fixed', p='d', c='c', x='')), 'form a cycle'),
        (_robot(J.format(n='j', t='continuous', p='a', c='b', x='<mimic joint="zz"/>')),
         "mimics 'zz'"),
    ],
)  # fmt: skip
def test_bad_urdfs_are_refused_with_the_element_named(text, message):
    with pytest.raises(UrdfError, match=message):
        KinematicTree.from_urdf(text)
