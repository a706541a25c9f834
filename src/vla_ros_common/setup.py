from setuptools import find_packages, setup

package_name = 'vla_ros_common'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'pyyaml', 'transforms3d'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='ROS helpers of the VLA suite.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'static_tf_publisher = vla_ros_common.static_tf_publisher:main',
            'graph_monitor = vla_ros_common.graph_monitor:main',
            'robot_state_node = vla_ros_common.robot_state_node:main',
            'vla_run = vla_ros_common.runner:main',
        ],
    },
)
