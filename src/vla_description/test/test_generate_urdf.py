"""The committed URDFs are the generator's output, and they say what the table says."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from vla_core.kinematics import KinematicTree
from vla_description import ROBOTS, urdf_path
from vla_description.arm import ARM, ARM_JOINTS, TABLETOP, Joint, Limits, Robot, look_at_rpy
from vla_description.generate_urdf import main, to_urdf


@pytest.mark.parametrize('robot', [ARM, TABLETOP], ids=lambda r: r.name)
def test_committed_urdf_is_the_generated_one(robot):
    committed = urdf_path(robot.name).read_text()
    assert committed == to_urdf(robot), 'run: python -m vla_description.generate_urdf'


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    assert main(['--out', str(tmp_path)]) == 0
    assert main(['--out', str(tmp_path), '--check']) == 0
    (tmp_path / 'vla_arm.urdf').write_text('<robot name="vla_arm"/>\n')
    assert main(['--out', str(tmp_path), '--check']) == 1
    assert 'vla_arm.urdf' in capsys.readouterr().err


def test_urdf_reads_back_the_table_exactly():
    tree = KinematicTree.from_urdf(to_urdf(TABLETOP))
    assert tree.root == 'world' and set(tree.links) == set(TABLETOP.links)
    for joint in TABLETOP.joints:
        parsed = tree.joints[joint.name]
        assert (parsed.type, parsed.parent, parsed.child) == (joint.type, joint.parent, joint.child)
        np.testing.assert_array_equal(parsed.origin[:3, 3], joint.xyz)
        np.testing.assert_allclose(parsed.origin[:3, :3], joint.rotation, atol=1e-15)
        if joint.limits is not None:
            lim = parsed.limit
            assert (lim.lower, lim.upper, lim.velocity, lim.effort) == (
                joint.limits.lower, joint.limits.upper, joint.limits.velocity, joint.limits.effort,
            )  # fmt: skip
            np.testing.assert_array_equal(parsed.axis, joint.axis)
    assert tree.joints['right_finger'].mimic == ('gripper', 1.0, 0.0)


def test_the_arm_is_the_tabletop_without_the_cell():
    assert ARM.root == 'base_link'
    assert set(TABLETOP.links) - set(ARM.links) == {
        'world', 'imu_link', 'scene_camera_link', 'scene_camera_optical_frame'
    }  # fmt: skip
    for joint in ARM.joints:
        assert TABLETOP.joint(joint.name) == joint
    assert [j.name for j in ARM.joints if j.type == 'revolute'] == list(ARM_JOINTS)


def test_cameras_follow_rep_103_and_105():
    tree = KinematicTree.from_urdf(to_urdf(TABLETOP))
    poses = tree.forward({})
    for camera in ('scene_camera', 'wrist_camera'):
        link, optical = poses[f'{camera}_link'], poses[f'{camera}_optical_frame']
        # Optical z (viewing direction) = body x; optical x (image right) = -body y; y down = -z.
        np.testing.assert_allclose(optical[:3, 2], link[:3, 0], atol=1e-12)
        np.testing.assert_allclose(optical[:3, 0], -link[:3, 1], atol=1e-12)
        np.testing.assert_allclose(optical[:3, 1], -link[:3, 2], atol=1e-12)
    # The scene camera looks at its target; the wrist camera along the tool (down at zero).
    scene = poses['scene_camera_link']
    to_target = np.subtract((0.43, 0.0, 0.0), scene[:3, 3])
    np.testing.assert_allclose(scene[:3, 0], to_target / np.linalg.norm(to_target), atol=1e-12)
    np.testing.assert_allclose(poses['wrist_camera_link'][:3, 0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(poses['ee_link'][:3, 2], [0, 0, -1], atol=1e-12)


def test_look_at_keeps_the_image_level():
    rpy = look_at_rpy((1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    assert rpy[0] == pytest.approx(0.0, abs=1e-12)  # no roll
    assert rpy[2] == pytest.approx(-0.75 * math.pi)


def test_urdf_is_wellformed_for_ros_tools():
    for name in ROBOTS:
        root = ET.parse(urdf_path(name)).getroot()
        links = {el.get('name') for el in root.findall('link')}
        for joint in root.findall('joint'):
            assert joint.find('parent').get('link') in links
            assert joint.find('child').get('link') in links
            if joint.get('type') != 'fixed':
                assert joint.find('limit') is not None and joint.find('axis') is not None
        used = {m.get('name') for m in root.iter('material') if m.find('color') is None}
        assert used <= {m.get('name') for m in root.findall('material')}


def test_the_table_refuses_a_broken_tree():
    with pytest.raises(ValueError, match='breaks the tree'):
        Robot('r', 'base', (Joint('j', 'fixed', 'elsewhere', 'a'),), {})
    with pytest.raises(ValueError, match='moving joints have limits'):
        Joint('j', 'revolute', 'a', 'b')
    with pytest.raises(ValueError, match='bad limits'):
        Limits(1.0, -1.0, 1.0, 1.0)
