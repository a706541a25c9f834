from setuptools import find_packages, setup

package_name = 'vla_teleop'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'mcap', 'pyyaml'],
    zip_safe=True,
    extras_require={'test': ['pytest', 'rosbags']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='Demonstration recording: episodes as rosbag2 MCAP bags, crash-safe.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'recorder_node = vla_teleop.recorder_node:main',
            'teleop_node = vla_teleop.teleop_node:main',
            # renamed in 0.2 (vla <command>); these print a deprecation line
            'recorder = vla_teleop.renamed_commands:recorder',
            'recover_episodes = vla_teleop.renamed_commands:recover_episodes',
            'build_dataset = vla_teleop.renamed_commands:build_dataset',
        ],
    },
)
